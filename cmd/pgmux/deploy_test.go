package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestDeployStopSignal: every shipped way of running pgmux stops it with SIGINT, the safe
// shutdown, and waits longer than shutdown_timeout before killing it.
func TestDeployStopSignal(t *testing.T) {
	timeout := int(config.Default().ShutdownTimeout.Seconds())
	for _, tt := range []struct{ file, signal, wait string }{
		{"../../Dockerfile", `(?m)^STOPSIGNAL SIGINT$`, ""},
		{"../../deploy/compose.yaml", `(?m)^\s+stop_signal: SIGINT$`, `(?m)^\s+stop_grace_period: (\d+)s$`},
		{"../../deploy/pgmux.service", `(?m)^KillSignal=SIGINT$`, `(?m)^TimeoutStopSec=(\d+)$`},
		{"../../deploy/fly/fly.toml", `(?m)^kill_signal = "SIGINT"$`, `(?m)^kill_timeout = (\d+)$`},
	} {
		b, err := os.ReadFile(tt.file)
		require.NoError(t, err)
		require.Regexp(t, tt.signal, string(b), tt.file)
		if tt.wait == "" {
			continue
		}
		m := regexp.MustCompile(tt.wait).FindStringSubmatch(string(b))
		require.NotNil(t, m, "%s: %s", tt.file, tt.wait)
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.Greater(t, n, timeout, "%s waits longer than shutdown_timeout before killing", tt.file)
	}
}
