package prepared

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestOtherDrivers runs asyncpg, node-postgres and ruby-pg scripts through pgmux in
// transaction mode. Each prints "ok N" and exits non-zero on any error. A missing
// interpreter or driver skips the test, and fails it in CI (.ci/run installs them).
func TestOtherDrivers(t *testing.T) {
	nodePath := strings.Join([]string{os.Getenv("NODE_PATH"), "/usr/share/nodejs", "/usr/lib/nodejs",
		"/usr/lib/node_modules", "/usr/local/lib/node_modules"}, ":")
	drivers := []struct {
		name   string
		prog   string // interpreter: an absolute path is tried first, then PATH
		check  []string
		script string
		env    []string
		want   int
	}{
		// Debian's python3-asyncpg lives under /usr/bin/python3, not a pyenv python.
		{"asyncpg", "/usr/bin/python3", []string{"-c", "import asyncpg"}, "asyncpg_load.py", nil, 50 * 20 * 3},
		{"node-postgres", "node", []string{"-e", "require('pg')"}, "node_pg.js", []string{"NODE_PATH=" + nodePath}, 10 * 30 * 3},
		{"ruby-pg", "ruby", []string{"-e", "require 'pg'"}, "ruby_pg.rb", nil, 8 * 30 * 2},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 5, mode: mode})
			for _, d := range drivers {
				t.Run(d.name, func(t *testing.T) {
					prog := interpreter(t, d.prog)
					env := append(os.Environ(), d.env...)
					if out, err := muxtest.RunCmd(t, 30*time.Second, env, prog, d.check...); err != nil {
						skipOrFail(t, d.name+" is not installed: "+strings.TrimSpace(out))
					}
					db := database(t, m.pg, "drv")
					script, err := filepath.Abs(filepath.Join("testdata", d.script))
					require.NoError(t, err)
					dsn := "postgres://" + pgtest.AppUser + ":" + pgtest.AppPassword + "@127.0.0.1:" +
						strconv.Itoa(m.Port) + "/" + db + "?sslmode=disable"
					out, err := muxtest.RunCmd(t, 3*time.Minute, env, prog, script, dsn)
					require.NoError(t, err, out)
					last := regexp.MustCompile(`(?m)^ok (\d+)\s*\z`).FindStringSubmatch(out)
					require.NotNil(t, last, "no final \"ok N\" line:\n%s", out)
					require.Equal(t, strconv.Itoa(d.want), last[1], out)
				})
			}
		})
	}
}

// interpreter finds a program: the absolute path when it exists, else on PATH.
func interpreter(t *testing.T, prog string) string {
	t.Helper()
	if filepath.IsAbs(prog) {
		if _, err := os.Stat(prog); err == nil {
			return prog
		}
		prog = filepath.Base(prog)
	}
	p, err := exec.LookPath(prog)
	if err != nil {
		skipOrFail(t, prog+" not found")
	}
	return p
}

// skipOrFail skips the test, or fails it in CI, where every test must run.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if pgtest.InCI() {
		t.Fatalf("%s (CI is set: this test must not skip)", reason)
	}
	t.Skip(reason)
}
