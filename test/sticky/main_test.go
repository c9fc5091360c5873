// Package sticky proves session-scoped work in transaction mode end to end: a real
// PostgreSQL started by internal/pgtest, pgmux in process in front of it, and real
// clients (pgx's full driver, psql, pg_dump, pg_restore, pgbench) taking advisory locks,
// LISTENing, keeping temp tables and SET values, dumping and restoring, and running out
// of direct connections, while other clients keep transaction pooling.
package sticky

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) {
	// Hundreds of clients need as many descriptors on each side of pgmux, in this process.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "sticky: raise RLIMIT_NOFILE: %v\n", err)
		}
	}
	os.Exit(pgtest.Run(m))
}
