package multihost

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestQueryEndingStandbyTransaction: inside a read-only transaction open on a standby, a
// simple Query that ends it and goes on (`COMMIT; INSERT ...`) is answered as a direct
// connection to the primary answers it: the statements through the end run on the
// standby, the rest on the primary, and the client gets one answer with one
// ReadyForQuery. It ran wholly on the standby, and the INSERT failed with 25006. An error
// before the end stops the Query there, as on PostgreSQL; COMMIT AND CHAIN keeps the
// read-only transaction; ROLLBACK of a failed transaction goes on. Afterwards the
// client is outside a transaction, and a read-only transaction on the standby sees
// the rows written.
func TestQueryEndingStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE sp (x int); GRANT ALL ON sp TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	const ins = "INSERT INTO sp VALUES (1)"
	for _, tc := range []struct {
		name  string
		steps []string // simple Queries after BEGIN READ ONLY
	}{
		{"COMMIT, write", []string{"COMMIT; " + ins}},
		{"read, COMMIT, write, read", []string{"SELECT 1; COMMIT; " + ins + "; SELECT pg_is_in_recovery()"}},
		{"END, write", []string{"END; " + ins + "; " + ins}},
		{"ROLLBACK, write", []string{"ROLLBACK; " + ins}},
		{"ROLLBACK of a failed transaction, write", []string{"SELECT 1/0", "ROLLBACK; " + ins}},
		{"COMMIT of a failed transaction, write", []string{"SELECT 1/0", "COMMIT; " + ins}},
		{"error before COMMIT", []string{"SELECT 1/0; COMMIT; " + ins, "ROLLBACK"}},
		{"COMMIT AND CHAIN, write", []string{"COMMIT AND CHAIN; " + ins, "ROLLBACK"}},
		{"COMMIT, a read-only transaction, write", []string{"COMMIT; BEGIN READ ONLY; SELECT 1; COMMIT; " + ins}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
			viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
			_, err := direct.Exec(ctx, "BEGIN READ ONLY")
			require.NoError(t, err)
			beginOnStandby(t, p, viaMux)
			for _, q := range tc.steps {
				want := queryOutcome(ctx, direct, q)
				require.Equal(t, want, queryOutcome(ctx, viaMux, q), "%s: through pgmux as on the primary", q)
				require.Equal(t, direct.PgConn().TxStatus(), viaMux.PgConn().TxStatus(), "%s: transaction status", q)
			}
		})
	}

	// One ReadyForQuery, and the client's next Query gets its own answer.
	t.Run("one ReadyForQuery", func(t *testing.T) {
		c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
		beginOnStandby(t, p, c)
		pc := c.PgConn()
		var got []string
		for _, q := range []string{"COMMIT; " + ins + "; SELECT pg_is_in_recovery()::text", "SELECT 'next'"} {
			pc.Frontend().Send(&pgproto3.Query{String: q})
			require.NoError(t, pc.Frontend().Flush())
			for done := false; !done; {
				m, err := pc.ReceiveMessage(ctx)
				require.NoError(t, err)
				switch m := m.(type) {
				case *pgproto3.CommandComplete:
					got = append(got, string(m.CommandTag))
				case *pgproto3.DataRow:
					got = append(got, string(m.Values[0]))
				case *pgproto3.ErrorResponse:
					got = append(got, m.Code)
				case *pgproto3.ReadyForQuery:
					got = append(got, "Z"+string(m.TxStatus))
					done = true
				}
			}
		}
		require.Equal(t, []string{"COMMIT", "INSERT 0 1", "false", "SELECT 1", "ZI", "next", "SELECT 1", "ZI"}, got)
	})

	// A read-only transaction after the writes sees them (read-your-writes), wherever it runs.
	c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
	beginOnStandby(t, p, c)
	_, err := c.Exec(ctx, "COMMIT; "+ins)
	require.NoError(t, err)
	var onPrimary, seen int
	require.NoError(t, p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app").QueryRow(ctx, "SELECT count(*) FROM sp").Scan(&onPrimary))
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM sp").Scan(&seen))
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, onPrimary, seen, "the client's read-only transaction sees its writes")
}

// beginOnStandby opens a read-only transaction on c that runs on the standby (tried until
// one does).
func beginOnStandby(t *testing.T, p *replicaPair, c *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	require.Eventually(t, func() bool {
		_, err := c.Exec(ctx, "BEGIN READ ONLY")
		require.NoError(t, err)
		if _, standby := server(t, c); standby {
			return true
		}
		_, err = c.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
		return false
	}, 10*time.Second, 20*time.Millisecond, "a read-only transaction reaches the standby; %s", primaryReasons(t, p.reg))
}
