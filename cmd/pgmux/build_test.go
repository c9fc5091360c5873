package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBuildsMatchTheImage: the README's build line, `make build` and the bench scripts'
// build_pgmux make the binary the Dockerfile ships (static, no cgo, -trimpath, stripped), so
// what the benchmarks measure is what users run. A cgo build differs at run time: the OS
// threads the runtime starts get glibc thread stacks and malloc arenas (bench/README.md:
// about 1.5 MB more RSS at start and 150 bytes more per idle client at 2,000).
func TestBuildsMatchTheImage(t *testing.T) {
	flags := []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`}
	for _, tt := range []struct{ file, line string }{
		{"../../Dockerfile", `(?m)^RUN .*go build .*\./cmd/pgmux$`},
		{"../../Makefile", `(?m)^\t.*\$\(GO\) build .*-o bin/pgmux \./cmd/pgmux$`},
		{"../../README.md", `(?m)^.*go build .*-o bin/pgmux \./cmd/pgmux.*$`},
	} {
		b, err := os.ReadFile(tt.file)
		require.NoError(t, err)
		line := regexp.MustCompile(tt.line).FindString(string(b))
		require.NotEmpty(t, line, "%s: no pgmux build line (%s)", tt.file, tt.line)
		for _, f := range flags {
			require.Contains(t, line, f, "%s builds pgmux without %s", tt.file, f)
		}
	}

	// bench/lib.sh's build_pgmux: the same flags (its "symbols" mode only keeps -s -w off).
	b, err := os.ReadFile("../../bench/lib.sh")
	require.NoError(t, err)
	fn := regexp.MustCompile(`(?s)\nbuild_pgmux\(\) \{\n.*?\n\}\n`).FindString(string(b))
	require.NotEmpty(t, fn, "bench/lib.sh has no build_pgmux")
	for _, f := range []string{"CGO_ENABLED=0 go build -trimpath", `(-ldflags "-s -w")`, "./cmd/pgmux"} {
		require.Contains(t, fn, f, "bench/lib.sh build_pgmux")
	}

	// Every bench script builds pgmux through build_pgmux, none with a go build of its own.
	scripts, err := filepath.Glob("../../bench/*.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	own := regexp.MustCompile(`go build[^\n]*\./cmd/pgmux\b`)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		require.NoError(t, err)
		text := string(b)
		if strings.HasSuffix(s, "lib.sh") {
			text = strings.Replace(text, fn, "", 1)
		}
		require.NotRegexp(t, own, text, "%s builds pgmux itself: use build_pgmux (bench/lib.sh)", s)
	}
}
