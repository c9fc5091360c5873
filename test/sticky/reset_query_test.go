package sticky

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestResetAlwaysWithoutResetQuery: server_reset_query_always = 1 with an empty
// server_reset_query (PgBouncer's advice for transaction mode is an empty reset query)
// runs nothing on release, so the server keeps its settings and prepared statements,
// and pgmux must keep knowing they are there (it forgets them only when the pool has
// run a reset query). Pool size 1: every client gets the same server.
func TestResetAlwaysWithoutResetQuery(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, directSize: 1, extra: map[string]string{
		"server_reset_query": "", "server_reset_query_always": "1"}})

	t.Run("settings", func(t *testing.T) {
		// A client's SET stays on the server; the next client must not see it.
		db := m.pg.NewDatabase(t, "resetalways")
		simple := func() *pgx.Conn {
			return muxtest.Connect(t, m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
		}
		a, b := simple(), simple()
		_, err := a.Exec(ctxT(t), "SET statement_timeout = '7s'")
		require.NoError(t, err)
		require.Equal(t, "7s", show(t, a, "statement_timeout"))
		require.Equal(t, "0", show(t, b, "statement_timeout"), "b sees a's setting")
		require.Equal(t, "7s", show(t, a, "statement_timeout"))
		require.Equal(t, 1, backends(t, m.direct(t, db), db), "one server served both")
	})

	t.Run("statements", func(t *testing.T) {
		// A statement pgmux prepared stays on the server: using it again, from the same
		// client or another, must not prepare it twice (42P05).
		db := m.pg.NewDatabase(t, "resetalways")
		a, b := m.connect(t, db), m.connect(t, db)
		var n int
		for i, conn := range []*pgx.Conn{a, a, b, a} {
			require.NoError(t, conn.QueryRow(ctxT(t), "SELECT $1::int + 1", i).Scan(&n))
			require.Equal(t, i+1, n)
		}
		require.Equal(t, 1, backends(t, m.direct(t, db), db), "one server served both")
	})
}
