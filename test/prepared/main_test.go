// Package prepared proves that named prepared statements work through pgmux in
// transaction mode: real drivers (pgx, pgconn's pipeline and raw protocol, pgbench,
// asyncpg, node-postgres, ruby-pg) against a real PostgreSQL started by internal/pgtest,
// with pgmux served in this process from a pgbouncer.ini.
package prepared

import (
	"testing"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestMain raises the descriptor limit: pgbench with 1000 clients needs ~2000
// descriptors in this process (both sides of pgmux) and 1000 in pgbench, which inherits
// the limit.
func TestMain(m *testing.M) { muxtest.Main(m) }
