// Package sticky proves session-scoped work in transaction mode end to end: a real
// PostgreSQL started by internal/pgtest, pgmux in process in front of it, and real
// clients (pgx's full driver, psql, pg_dump, pg_restore, pgbench) taking advisory locks,
// LISTENing, keeping temp tables and SET values, dumping and restoring, and running out
// of direct connections, while other clients keep transaction pooling.
package sticky

import (
	"testing"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestMain raises the descriptor limit: hundreds of clients need as many descriptors on
// each side of pgmux, in this process.
func TestMain(m *testing.M) { muxtest.Main(m) }
