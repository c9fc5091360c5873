// Package e2e proves pgmux's acceptance points end to end: a real PostgreSQL started by
// internal/pgtest, pgmux in front of it (in process, or the built binary for signal tests),
// and real clients in front of pgmux — pgx's full driver, psql and pgbench.
package e2e

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) {
	// pgbench with 1000 clients needs ~1000 descriptors on each side of pgmux, in this
	// process; raise the soft limit to the hard one (children inherit it).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: raise RLIMIT_NOFILE: %v\n", err)
		}
	}
	code := pgtest.Run(m)
	removeBinary()
	os.Exit(code)
}
