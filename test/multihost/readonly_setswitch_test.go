package multihost

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSwitchAfterSetInStandbyTransaction: a read-only transaction whose BEGIN went alone
// to a standby, in which only SET, SET LOCAL, SET TRANSACTION and SHOW ran, is switched
// to read-write as on PostgreSQL, which takes the switch until the transaction's first
// query (those statements take no snapshot): it moves to the primary with its settings.
// It stayed on the standby, which refused the switch (0A000) and the writes after it.
// RESET, SET ... TO DEFAULT, savepoints (SAVEPOINT, RELEASE, ROLLBACK TO), SET
// CONSTRAINTS and empty queries keep it movable too, and a switch to serializable isolation, which a standby refuses (0A000)
// at any time, moves it as well; before, both were refused by the standby.
// Where PostgreSQL refuses the switch (after a query, in a failed transaction) pgmux
// gives its error; a session SET made in the moved transaction lasts after its COMMIT.
func TestSwitchAfterSetInStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE ss (x int); GRANT ALL ON ss TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	const ins = "INSERT INTO ss VALUES (1)"
	type step struct {
		query string   // one simple Query, or
		batch []string // one batch (extended protocol, one Sync), or
		pgx   []string // one pgx batch, in cache_statement mode (prepared first)
	}
	q := func(s string) step { return step{query: s} }
	b := func(s ...string) step { return step{batch: s} }
	px := func(s ...string) step { return step{pgx: s} }
	for _, tc := range []struct {
		name  string
		steps []step // after BEGIN READ ONLY, sent alone
	}{
		{"SET LOCAL, switch", []step{q("SET LOCAL work_mem = '8MB'"), q("SET TRANSACTION READ WRITE"),
			q("SHOW work_mem"), q(ins), q("COMMIT"), q("SHOW work_mem")}},
		{"SHOW, switch", []step{q("SHOW transaction_read_only"), q("SET TRANSACTION READ WRITE"), q(ins),
			q("SHOW transaction_read_only"), q("COMMIT")}},
		{"SET, SHOW, SET LOCAL in one Query; switch and write in one", []step{
			q("SET statement_timeout = '5s'; SHOW statement_timeout; SET LOCAL lock_timeout = '3s'"),
			q("SET TRANSACTION READ WRITE; " + ins), q("SHOW lock_timeout"), q("COMMIT"),
			q("SHOW statement_timeout"), q("SHOW lock_timeout"), q("RESET statement_timeout")}},
		{"several requests, then transaction_read_only off", []step{q("SET LOCAL work_mem = '9MB'"), q("SHOW work_mem"),
			q("SET LOCAL search_path = pg_catalog, public"), q("SET transaction_read_only = off"), q(ins),
			q("SHOW search_path"), q("ROLLBACK"), q("SHOW search_path")}},
		{"SET TRANSACTION ISOLATION LEVEL, switch", []step{q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
			q("SET TRANSACTION READ WRITE"), q("SHOW transaction_isolation"), q(ins), q("COMMIT")}},
		{"batches", []step{b("SET LOCAL work_mem = '7MB'", "SHOW work_mem"), b("SET TRANSACTION READ WRITE", ins, "SHOW work_mem"),
			q("COMMIT")}},
		// (pgx prepares a batch's statements first: a write's Parse in the batch of the
		// switch takes a snapshot before the switch runs, and PostgreSQL refuses it.)
		{"pgx batches", []step{px("SET LOCAL work_mem = '6MB'", "SHOW work_mem"),
			px("SET TRANSACTION READ WRITE", "SHOW transaction_read_only"), q(ins), q("SHOW work_mem"),
			px("SHOW transaction_read_only", "COMMIT")}},
		{"pgx batch with the write", []step{px("SHOW work_mem"), px("SET TRANSACTION READ WRITE", ins), q("ROLLBACK")}},
		// RESET, SET TO DEFAULT and savepoints take no snapshot either.
		{"RESET, switch", []step{q("RESET work_mem"), q("SET TRANSACTION READ WRITE"), q(ins), q("COMMIT")}},
		{"SET TO DEFAULT, switch", []step{q("SET statement_timeout TO DEFAULT"), q("SET LOCAL work_mem TO DEFAULT"),
			q("SET transaction_read_only = off"), q(ins), q("SHOW statement_timeout"), q("COMMIT")}},
		{"released SAVEPOINT, switch", []step{q("SAVEPOINT a"), q("SET LOCAL work_mem = '5MB'"), q("RELEASE SAVEPOINT a"),
			q("SET TRANSACTION READ WRITE"), q(ins), q("SHOW work_mem"), q("COMMIT")}},
		{"ROLLBACK TO, RELEASE, switch", []step{q("SAVEPOINT a; SET LOCAL work_mem = '5MB'; ROLLBACK TO a"), q("RELEASE a"),
			q("SET TRANSACTION READ WRITE; " + ins), q("SHOW work_mem"), q("ROLLBACK")}},
		{"savepoint batches", []step{b("SAVEPOINT b", "RESET lock_timeout", "RELEASE b"), b("SET TRANSACTION READ WRITE", ins),
			q("COMMIT")}},
		// SET CONSTRAINTS and an empty query take none either.
		{"SET CONSTRAINTS, switch", []step{q("SET CONSTRAINTS ALL DEFERRED"), q("SET TRANSACTION READ WRITE"), q(ins),
			q("COMMIT")}},
		{"empty query, switch", []step{q(""), q(";"), b(""), q("SET TRANSACTION READ WRITE"), q(ins), q("COMMIT")}},
		// Serializable isolation: a standby refuses it (0A000), the primary takes it.
		{"SERIALIZABLE", []step{q("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"), q("SHOW transaction_isolation"),
			q("SELECT count(*) FROM ss"), q("COMMIT")}},
		{"SET LOCAL, SERIALIZABLE DEFERRABLE", []step{q("SET LOCAL work_mem = '3MB'"),
			q("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"), q("SHOW transaction_deferrable"),
			q("SHOW work_mem"), q("COMMIT")}},
		{"transaction_isolation serializable, switch", []step{q("SET transaction_isolation = serializable"),
			q("SET TRANSACTION READ WRITE"), q(ins), q("SHOW transaction_isolation"), q("COMMIT")}},
		{"pgx batch SERIALIZABLE", []step{px("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SHOW transaction_isolation"),
			q("COMMIT")}},
		{"REPEATABLE READ DEFERRABLE", []step{q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, DEFERRABLE"),
			q("SHOW transaction_deferrable"), q("COMMIT")}},
		// PostgreSQL refuses these: pgmux gives its errors.
		{"inside a SAVEPOINT", []step{q("SAVEPOINT a"), q("SET TRANSACTION READ WRITE"), q("ROLLBACK")}},
		{"SERIALIZABLE inside a SAVEPOINT", []step{q("SAVEPOINT a"), q("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
			q("ROLLBACK")}},
		{"SERIALIZABLE after a query", []step{q("SELECT 1"), q("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"), q("ROLLBACK")}},
		{"after a query", []step{q("SET LOCAL work_mem = '8MB'"), q("SELECT 1"), q("SET TRANSACTION READ WRITE"), q("ROLLBACK")}},
		{"after a SHOW and a query in one Query", []step{q("SHOW work_mem; SELECT 1"), q("SET TRANSACTION READ WRITE"), q("ROLLBACK")}},
		{"after a failed SET", []step{q("SET LOCAL work_mem = 'lots'"), q("SET TRANSACTION READ WRITE"), q("ROLLBACK")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := pgx.QueryExecModeCacheStatement
			direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			_, err := direct.Exec(ctx, "BEGIN READ ONLY")
			require.NoError(t, err)
			beginAloneOnStandby(t, p, viaMux)
			for _, st := range tc.steps {
				run := func(c *pgx.Conn) []string {
					if st.pgx != nil {
						return batchOutcome(ctx, c, st.pgx)
					}
					if st.batch != nil {
						bt := &pgconn.Batch{}
						for _, s := range st.batch {
							bt.ExecParams(s, nil, nil, nil, nil)
						}
						return resultValues(c.PgConn().ExecBatch(ctx, bt).ReadAll())
					}
					return resultValues(c.PgConn().Exec(ctx, st.query).ReadAll())
				}
				want := run(direct)
				require.Equal(t, want, run(viaMux), "%v: through pgmux as on the primary", st)
				require.Equal(t, direct.PgConn().TxStatus(), viaMux.PgConn().TxStatus(), "%v: transaction status", st)
			}
		})
	}
}

// beginAloneOnStandby sends BEGIN READ ONLY alone on c until it reaches the standby:
// nothing else runs in the transaction.
func beginAloneOnStandby(t *testing.T, p *replicaPair, c *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	for i := 0; i < 200; i++ {
		reads := counter(t, p.reg, "pgmux_replica_reads_total", nil)
		_, err := c.Exec(ctx, "BEGIN READ ONLY")
		require.NoError(t, err)
		if counter(t, p.reg, "pgmux_replica_reads_total", nil) > reads {
			return
		}
		_, err = c.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
	}
	t.Fatalf("the BEGIN never reached the standby; %s", primaryReasons(t, p.reg))
}

// resultValues is each result's tag (or SQLSTATE) and its first row's first value.
func resultValues(res []*pgconn.Result, err error) []string {
	var out []string
	for _, r := range res {
		o := outcome(r.CommandTag, r.Err)
		if len(r.Rows) > 0 {
			o += " " + string(r.Rows[0][0])
		}
		out = append(out, o)
	}
	if err != nil && (len(res) == 0 || res[len(res)-1].Err == nil) {
		out = append(out, outcome(pgconn.CommandTag{}, err))
	}
	return out
}
