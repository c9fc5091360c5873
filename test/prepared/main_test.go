// Package prepared proves that named prepared statements work through pgmux in
// transaction mode: real drivers (pgx, pgconn's pipeline and raw protocol, pgbench,
// asyncpg, node-postgres, ruby-pg) against a real PostgreSQL started by internal/pgtest,
// with pgmux served in this process from a pgbouncer.ini.
package prepared

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) {
	// pgbench with 1000 clients needs ~2000 descriptors in this process (both sides of
	// pgmux) and 1000 in pgbench, which inherits the limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "prepared: raise RLIMIT_NOFILE: %v\n", err)
		}
	}
	os.Exit(pgtest.Run(m))
}
