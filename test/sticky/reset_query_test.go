package sticky

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestServerResetQueryAlways: with server_reset_query_always = 1 every release runs
// server_reset_query, whatever it is: nothing when it is empty (PgBouncer's advice for
// transaction mode), or a query that wipes only part of the session. pgmux must forget
// exactly what the query wiped: a setting the server keeps must not reach the next
// client, and a statement the server keeps must not be prepared again (42P05). Pool size
// 1: every client gets the same server.
func TestServerResetQueryAlways(t *testing.T) {
	for _, query := range []string{"", "DEALLOCATE ALL", "RESET ALL", "DISCARD ALL"} {
		t.Run("reset query "+query, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, directSize: 1, extra: map[string]string{
				"server_reset_query": query, "server_reset_query_always": "1"}})

			t.Run("settings", func(t *testing.T) {
				// A client's SET stays on the server unless the query resets it; the next
				// client sees the default either way, and the client its own value.
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
				// A statement pgmux prepared stays on the server unless the query drops it:
				// using it again, from the same client or another, works either way.
				db := m.pg.NewDatabase(t, "resetalways")
				a, b := m.connect(t, db), m.connect(t, db)
				var n int
				for i, conn := range []*pgx.Conn{a, a, b, a} {
					require.NoError(t, conn.QueryRow(ctxT(t), "SELECT $1::int + 1", i).Scan(&n))
					require.Equal(t, i+1, n)
				}
				require.Equal(t, 1, backends(t, m.direct(t, db), db), "one server served both")
			})
		})
	}
}
