package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthcheckTimeout bounds the whole probe: connect, request and response headers.
const healthcheckTimeout = 2 * time.Second

// healthcheckURL reports whether args ask for a health probe ("-healthcheck URL" or
// "--healthcheck URL" or "--healthcheck=URL"), and the URL. Container images without a shell
// or curl (distroless, scratch) run `pgmux -healthcheck http://127.0.0.1:9127/readyz` as
// their HEALTHCHECK.
func healthcheckURL(args []string) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	for _, p := range []string{"-healthcheck=", "--healthcheck="} {
		if u, ok := strings.CutPrefix(args[0], p); ok && len(args) == 1 {
			return u, true
		}
	}
	if (args[0] == "-healthcheck" || args[0] == "--healthcheck") && len(args) == 2 {
		return args[1], true
	}
	return "", false
}

// runHealthcheck GETs url with a 2 s timeout and returns nil only for HTTP 200, so the
// process exits non-zero (through main) for any other status or a network error.
func runHealthcheck(url string) error {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("healthcheck: %q is not an http:// or https:// URL", url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{Timeout: healthcheckTimeout}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s returned %s", url, resp.Status)
	}
	return nil
}
