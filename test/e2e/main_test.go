// Package e2e proves pgmux's acceptance points end to end: a real PostgreSQL started by
// internal/pgtest, pgmux in front of it (in process, or the built binary for signal tests),
// and real clients in front of pgmux — pgx's full driver, psql and pgbench.
package e2e

import (
	"testing"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestMain raises the descriptor limit: pgbench with 1000 clients needs ~1000 descriptors
// on each side of pgmux, in this process (children inherit it).
func TestMain(m *testing.M) { muxtest.Main(m, removeBinary) }
