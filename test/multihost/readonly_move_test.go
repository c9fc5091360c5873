package multihost

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestBatchEndingStandbyTransaction: inside a read-only transaction open on a standby, an
// extended-protocol request (a pgx batch: Parse, Bind, Execute of each statement and one
// Sync) that ends it and goes on is answered as a direct connection to the primary
// answers it: the statements through the COMMIT, END or ROLLBACK run on the standby, the
// rest on the primary, and the client gets one ReadyForQuery. It ran wholly on the
// standby, and the write after the COMMIT failed with 25006. An error before the end
// stops the batch there, as on PostgreSQL; COMMIT AND CHAIN keeps the read-only
// transaction.
func TestBatchEndingStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE bs (x int); GRANT ALL ON bs TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	const ins = "INSERT INTO bs VALUES (1)"
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec} {
		for _, tc := range []struct {
			name  string
			steps [][]string // batches after BEGIN READ ONLY and a read
		}{
			{"COMMIT, write", [][]string{{"COMMIT", ins}}},
			{"read, COMMIT, write, read", [][]string{{"SELECT 1", "COMMIT", ins, "SELECT pg_is_in_recovery()"}}},
			{"END, write", [][]string{{"END", ins, ins}}},
			{"ROLLBACK, write", [][]string{{"ROLLBACK", ins}}},
			{"error before COMMIT", [][]string{{"SELECT 1/0", "COMMIT", ins}, {"ROLLBACK"}}},
			{"COMMIT AND CHAIN, write", [][]string{{"COMMIT AND CHAIN", ins}, {"ROLLBACK"}}},
			{"COMMIT, a read-only transaction, write", [][]string{{"COMMIT", "BEGIN READ ONLY", "SELECT 1", "COMMIT", ins}}},
		} {
			t.Run(mode.String()+": "+tc.name, func(t *testing.T) {
				direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
				viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
				_, err := direct.Exec(ctx, "BEGIN READ ONLY")
				require.NoError(t, err)
				server(t, direct)
				beginOnStandby(t, p, viaMux)
				for _, b := range tc.steps {
					run := func(c *pgx.Conn) []string {
						if len(b) == 1 {
							// A lone ROLLBACK as a simple Query: in cache_statement mode pgx
							// prepares it first, which pgmux answers with 25P02 in an
							// aborted transaction, on the primary too (another matter).
							return queryOutcome(ctx, c, b[0])
						}
						return batchOutcome(ctx, c, b)
					}
					want := run(direct)
					require.Equal(t, want, run(viaMux), "%q: through pgmux as on the primary", b)
					require.Equal(t, direct.PgConn().TxStatus(), viaMux.PgConn().TxStatus(), "%q: transaction status", b)
				}
			})
		}
	}

	// One ReadyForQuery for the split request, and the request pipelined behind it gets
	// its own answer (routed anew).
	t.Run("one ReadyForQuery", func(t *testing.T) {
		c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
		beginOnStandby(t, p, c)
		pl := c.PgConn().StartPipeline(ctx)
		for _, q := range []string{"COMMIT", ins, "SELECT pg_is_in_recovery()::text"} {
			pl.SendQueryParams(q, nil, nil, nil, nil)
		}
		pl.SendPipelineSync()
		pl.SendQueryParams("SELECT 'next'", nil, nil, nil, nil)
		require.NoError(t, pl.Sync())
		res := pipelineResults(t, pl, 2)
		require.Equal(t, []string{"COMMIT", "INSERT 0 1", "", "sync", "", "sync"}, tags(res), "%v", res)
		require.Equal(t, "false", res[2].rows, "after the COMMIT: the primary")
		require.Equal(t, "next", res[4].rows)
		require.NoError(t, pl.Close())
		require.Equal(t, byte('I'), c.PgConn().TxStatus())
	})
}

// TestSwitchInStandbyTransaction: a read-only transaction that went to a standby on its
// BEGIN (sent alone) and is switched to read-write by the client's next request (SET
// TRANSACTION READ WRITE, SET transaction_read_only = off), before any query ran in it,
// is writable as on the primary: it moves there. It stayed on the standby, which refused
// the switch with 0A000. The transaction keeps its isolation level; a switch after a
// query fails with 25001 as on PostgreSQL; a request that does not switch leaves the
// transaction on the standby.
func TestSwitchInStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE sw (x int); GRANT ALL ON sw TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	const ins = "INSERT INTO sw VALUES (1)"
	type step struct {
		query string   // one simple Query, or
		batch []string // one pgx batch (extended protocol, one Sync)
	}
	q := func(s string) step { return step{query: s} }
	b := func(s ...string) step { return step{batch: s} }
	for _, tc := range []struct {
		name     string
		begin    string
		extended bool // the BEGIN in the extended protocol
		steps    []step
		startup  string // application_name given at startup
	}{
		{name: "SET TRANSACTION READ WRITE, write", begin: "BEGIN READ ONLY",
			steps: []step{q("SET TRANSACTION READ WRITE"), q(ins), q("SHOW transaction_read_only"), q("COMMIT")}},
		{name: "one Query", begin: "BEGIN READ ONLY", steps: []step{q("SET TRANSACTION READ WRITE; " + ins + "; COMMIT; " + ins)}},
		{name: "transaction_read_only off", begin: "START TRANSACTION READ ONLY",
			steps: []step{q("SET transaction_read_only = off"), q(ins), q("COMMIT")}},
		{name: "isolation kept", begin: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE",
			steps: []step{q("SET TRANSACTION READ WRITE"), q("SHOW transaction_isolation"), q("SHOW transaction_deferrable"), q(ins), q("COMMIT")}},
		{name: "batch", begin: "BEGIN READ ONLY", steps: []step{b("SET TRANSACTION READ WRITE", ins), b("COMMIT")}},
		{name: "extended BEGIN", begin: "begin isolation level repeatable read read only", extended: true,
			steps: []step{b("SET TRANSACTION READ WRITE", ins, "SHOW transaction_isolation"), q("COMMIT")}},
		{name: "then ROLLBACK", begin: "BEGIN READ ONLY", steps: []step{q("SET TRANSACTION READ WRITE"), q(ins), q("ROLLBACK")}},
		// SET SESSION CHARACTERISTICS takes no snapshot: the switch after it is allowed.
		{name: "SET SESSION CHARACTERISTICS, then switch", begin: "BEGIN READ ONLY",
			steps: []step{q("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
				q("SET TRANSACTION READ WRITE"), q(ins), q("SHOW default_transaction_isolation"), q("COMMIT"),
				q("SHOW default_transaction_isolation")}},
		// The startup value set again behind the RESET takes no snapshot either.
		{name: "reset of a startup setting, then switch", begin: "BEGIN READ ONLY", startup: "from startup",
			steps: []step{q("RESET application_name"), q("SHOW application_name"), q("SET TRANSACTION READ WRITE"),
				q(ins), q("SHOW application_name"), q("COMMIT"), q("SHOW application_name")}},
		{name: "reset of a startup setting in one Query with the switch", begin: "BEGIN READ ONLY", startup: "from startup",
			steps: []step{q("RESET application_name; SET TRANSACTION READ WRITE; " + ins), q("SHOW application_name"),
				q("ROLLBACK"), q("SHOW application_name")}},
		{name: "reset of a startup setting in a batch, then switch", begin: "BEGIN READ ONLY", startup: "from startup",
			steps: []step{b("RESET application_name", "SHOW application_name"), b("SET TRANSACTION READ WRITE", ins),
				q("SHOW application_name"), q("COMMIT"), q("SHOW application_name")}},
		// PostgreSQL refuses these too, or the transaction stays read-only.
		{name: "after a query", begin: "BEGIN READ ONLY", steps: []step{q("SELECT 1"), q("SET TRANSACTION READ WRITE"), q("ROLLBACK")}},
		{name: "SET SESSION CHARACTERISTICS", begin: "BEGIN READ ONLY",
			steps: []step{q("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"), q(ins), q("ROLLBACK")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := pgx.QueryExecModeExec
			direct := muxtest.Connect(t, withStartup(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), tc.startup), mode, opTimeout)
			viaMux := muxtest.Connect(t, withStartup(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), tc.startup), mode, opTimeout)
			begin := func(c *pgx.Conn) {
				var err error
				if tc.extended {
					_, err = c.PgConn().ExecParams(ctx, tc.begin, nil, nil, nil, nil).Close()
				} else {
					_, err = c.Exec(ctx, tc.begin)
				}
				require.NoError(t, err)
			}
			begin(direct)
			// The BEGIN alone reaches the standby (tried until it did): nothing runs in
			// the transaction before the steps.
			require.Eventually(t, func() bool {
				reads := counter(t, p.reg, "pgmux_replica_reads_total", nil)
				begin(viaMux)
				if counter(t, p.reg, "pgmux_replica_reads_total", nil) > reads {
					return true
				}
				_, err := viaMux.Exec(ctx, "ROLLBACK")
				require.NoError(t, err)
				return false
			}, 10*time.Second, 20*time.Millisecond, "the BEGIN reaches the standby; %s", primaryReasons(t, p.reg))
			for _, st := range tc.steps {
				run := func(c *pgx.Conn) []string {
					if st.batch != nil {
						return batchOutcome(ctx, c, st.batch)
					}
					return queryOutcome(ctx, c, st.query)
				}
				want := run(direct)
				require.Equal(t, want, run(viaMux), "%v: through pgmux as on the primary", st)
				require.Equal(t, direct.PgConn().TxStatus(), viaMux.PgConn().TxStatus(), "%v: transaction status", st)
			}
		})
	}

	// A request that does not switch leaves the transaction on the standby.
	t.Run("a read stays", func(t *testing.T) {
		c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
		require.Eventually(t, func() bool {
			_, err := c.Exec(ctx, "BEGIN READ ONLY")
			require.NoError(t, err)
			var rec bool
			require.NoError(t, c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec))
			_, err = c.Exec(ctx, "COMMIT")
			require.NoError(t, err)
			return rec
		}, 10*time.Second, 20*time.Millisecond, "a read-only transaction's read reaches the standby; %s", primaryReasons(t, p.reg))
	})
}

// withStartup adds application_name (when not empty) to the startup parameters of u.
func withStartup(t *testing.T, u, appName string) string {
	if appName == "" {
		return u
	}
	v, err := url.Parse(u)
	require.NoError(t, err)
	q := v.Query()
	q.Set("application_name", appName)
	v.RawQuery = q.Encode()
	return v.String()
}
