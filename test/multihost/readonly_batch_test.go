package multihost

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestWriteAfterReadOnlyTransactionInOneBatch: a pgx batch that runs a read-only
// transaction and then writes (BEGIN READ ONLY, SELECT, COMMIT, INSERT with one Sync)
// succeeds, as on a direct connection to the primary: it went to the standby on its
// first statement, where the INSERT failed with 25006. In every pgx mode (Parse, Bind,
// Execute of each and one Sync; named statements prepared in a request before; one
// simple Query). A write before the COMMIT still fails with 25006, as on PostgreSQL; a
// read-only batch still runs on the standby. Then pipelines (pgconn): two Syncs in one
// write, the write sent while the read-only transaction's answer is still coming (and
// the same with simple Queries), the COMMIT and the write in the request after the
// BEGIN's, all sent at once, and a Flush-driven pipeline whose write follows the COMMIT
// after a Flush.
func TestWriteAfterReadOnlyTransactionInOneBatch(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE wb (x int); GRANT ALL ON wb TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	rows := 0
	written := func(t *testing.T) {
		t.Helper()
		rows++
		var n int
		require.NoError(t, p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app").
			QueryRow(ctx, "SELECT count(*) FROM wb").Scan(&n))
		require.Equal(t, rows, n, "the INSERT wrote its row on the primary")
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)

			rec, errs := roBatch(ctx, c, "COMMIT", "INSERT INTO wb VALUES (1)")
			require.Equal(t, []error{nil, nil, nil, nil}, errs, "every statement succeeds, as on the primary")
			require.False(t, rec, "the batch writes: it runs on the primary")
			written(t)

			// A write inside the read-only transaction fails as it does on PostgreSQL.
			_, errs = roBatch(ctx, c, "INSERT INTO wb VALUES (2)", "COMMIT")
			require.NoError(t, errs[0])
			require.Equal(t, "25006", muxtest.PgError(t, errs[2]).Code, "errors: %v", errs)
			_, err := c.Exec(ctx, "ROLLBACK") // the failed transaction is still open
			require.NoError(t, err)

			// A read-only batch alone still runs on the standby (a request sent right
			// after another may ride along on its server: see reachesStandby).
			require.Eventually(t, func() bool {
				rec, errs := roBatch(ctx, c, "COMMIT")
				require.Equal(t, []error{nil, nil, nil}, errs)
				return rec
			}, 10*time.Second, 20*time.Millisecond, "a read-only batch reaches the standby; %s", primaryReasons(t, p.reg))
		})
	}

	// The standby has an idle connection now: a request routed there gets it at once.
	insert := func(pl *pgconn.Pipeline) { pl.SendQueryParams("INSERT INTO wb VALUES (3)", nil, nil, nil, nil) }
	for _, tc := range []struct {
		name string
		send func(t *testing.T, pl *pgconn.Pipeline) []piped
		want []string
		// The read-only transaction reaches the standby (tried until it did), the
		// INSERT the primary; else all of it runs on the primary.
		standby bool
	}{{
		name:    "two Syncs in one write",
		send:    roThenInsert("SELECT pg_is_in_recovery()::text", 0, insert),
		want:    []string{"BEGIN", "", "COMMIT", "sync", "INSERT 0 1", "sync"},
		standby: true,
	}, {
		name:    "write sent while the read-only answer comes",
		send:    roThenInsert("SELECT pg_is_in_recovery()::text FROM pg_sleep(0.3)", 50*time.Millisecond, insert),
		want:    []string{"BEGIN", "", "COMMIT", "sync", "INSERT 0 1", "sync"},
		standby: true,
	}, {
		name: "end and write in the next request of one write",
		send: func(t *testing.T, pl *pgconn.Pipeline) []piped {
			roPipeline(pl, "SELECT pg_is_in_recovery()::text")
			pl.SendPipelineSync()
			pl.SendQueryParams("COMMIT", nil, nil, nil, nil)
			insert(pl)
			require.NoError(t, pl.Sync())
			return pipelineResults(t, pl, 2)
		},
		want: []string{"BEGIN", "", "sync", "COMMIT", "INSERT 0 1", "sync"},
	}, {
		name: "Flush-driven",
		send: func(t *testing.T, pl *pgconn.Pipeline) []piped {
			roPipeline(pl, "SELECT pg_is_in_recovery()::text", "COMMIT")
			pl.SendFlushRequest()
			require.NoError(t, pl.Flush())
			first := pipelineResults(t, pl, 0)
			insert(pl)
			require.NoError(t, pl.Sync())
			return append(first, pipelineResults(t, pl, 1)...)
		},
		want: []string{"BEGIN", "", "COMMIT", "flush", "INSERT 0 1", "sync"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pc := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout).PgConn()
			standby := false
			for i := 0; i < 10 && !standby; i++ {
				pl := pc.StartPipeline(ctx)
				res := tc.send(t, pl)
				require.Equal(t, tc.want, tags(res), "%v", res)
				require.NoError(t, pl.Close())
				written(t)
				standby = res[1].rows == "true"
				if !tc.standby {
					require.False(t, standby, "not all of it here when routed: the primary")
					return
				}
			}
			require.True(t, standby, "the read-only transaction alone reached the standby; %s", primaryReasons(t, p.reg))
		})
	}

	// Simple Queries, the second sent before the first's answer came.
	t.Run("Query sent while the read-only answer comes", func(t *testing.T) {
		pc := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout).PgConn()
		standby := false
		for i := 0; i < 10 && !standby; i++ {
			fe := pc.Frontend()
			fe.Send(&pgproto3.Query{String: "BEGIN READ ONLY; SELECT pg_is_in_recovery()::text FROM pg_sleep(0.3); COMMIT"})
			require.NoError(t, fe.Flush())
			time.Sleep(50 * time.Millisecond)
			fe.Send(&pgproto3.Query{String: "INSERT INTO wb VALUES (3)"})
			require.NoError(t, fe.Flush())
			var got []string
			for ready := 0; ready < 2; {
				m, err := pc.ReceiveMessage(ctx)
				require.NoError(t, err)
				switch m := m.(type) {
				case *pgproto3.DataRow:
					standby = string(m.Values[0]) == "true"
				case *pgproto3.CommandComplete:
					got = append(got, string(m.CommandTag))
				case *pgproto3.ErrorResponse:
					got = append(got, m.Code)
				case *pgproto3.ReadyForQuery:
					ready++
				}
			}
			require.Equal(t, []string{"BEGIN", "SELECT 1", "COMMIT", "INSERT 0 1"}, got)
			written(t)
		}
		require.True(t, standby, "the read-only transaction alone reached the standby; %s", primaryReasons(t, p.reg))
	})
}

// roThenInsert sends a read-only transaction (BEGIN READ ONLY, sel, COMMIT) and its
// Sync, then, gap later (none: in the same write), insert's request and its Sync, and
// reads the answers.
func roThenInsert(sel string, gap time.Duration, insert func(*pgconn.Pipeline)) func(*testing.T, *pgconn.Pipeline) []piped {
	return func(t *testing.T, pl *pgconn.Pipeline) []piped {
		roPipeline(pl, sel, "COMMIT")
		pl.SendPipelineSync()
		if gap > 0 {
			require.NoError(t, pl.Flush())
			time.Sleep(gap)
		}
		insert(pl)
		require.NoError(t, pl.Sync())
		return pipelineResults(t, pl, 2)
	}
}

// roBatch sends a pgx batch of BEGIN READ ONLY, SELECT pg_is_in_recovery() and then
// stmts, and returns where the SELECT ran and each statement's error.
func roBatch(ctx context.Context, c *pgx.Conn, stmts ...string) (standby bool, errs []error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN READ ONLY")
	b.Queue("SELECT pg_is_in_recovery()")
	for _, s := range stmts {
		b.Queue(s)
	}
	br := c.SendBatch(ctx, b)
	_, err := br.Exec()
	errs = append(errs, err)
	errs = append(errs, br.QueryRow().Scan(&standby))
	for range stmts {
		_, err := br.Exec()
		errs = append(errs, err)
	}
	if err := br.Close(); err != nil && errs[len(errs)-1] == nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	return standby, errs
}

// roPipeline queues BEGIN READ ONLY, sel and then stmts on pl (Parse, Bind, Describe,
// Execute each).
func roPipeline(pl *pgconn.Pipeline, sel string, stmts ...string) {
	for _, q := range append([]string{"BEGIN READ ONLY", sel}, stmts...) {
		pl.SendQueryParams(q, nil, nil, nil, nil)
	}
}

// piped is one result of a pipeline: a statement's tag (and its first row's first value),
// a Sync's, or the end of what a Flush brought.
type piped struct {
	tag, rows string
	err       error
}

func (r piped) String() string { return fmt.Sprintf("{%s %q %v}", r.tag, r.rows, r.err) }

// pipelineResults reads pl's results up to its syncs-th Sync, or all it has after a
// Flush (syncs 0).
func pipelineResults(t *testing.T, pl *pgconn.Pipeline, syncs int) []piped {
	t.Helper()
	var out []piped
	for i := 0; i < 100; i++ {
		r, err := pl.GetResults()
		switch r := r.(type) {
		case *pgconn.ResultReader:
			res := r.Read()
			var p piped
			p.tag, p.err = res.CommandTag.String(), res.Err
			if len(res.Rows) > 0 {
				p.rows, p.tag = string(res.Rows[0][0]), ""
			}
			out = append(out, p)
		case *pgconn.PipelineSync:
			out = append(out, piped{tag: "sync"})
			if syncs--; syncs == 0 {
				return out
			}
		case nil:
			if err != nil {
				return append(out, piped{err: err})
			}
			return append(out, piped{tag: "flush"})
		}
	}
	t.Fatal("a pipeline without end")
	return nil
}

// tags are the results' tags, or their errors' SQLSTATE.
func tags(res []piped) []string {
	var out []string
	for _, r := range res {
		if pe, ok := r.err.(*pgconn.PgError); ok {
			out = append(out, pe.Code)
		} else if r.err != nil {
			out = append(out, r.err.Error())
		} else {
			out = append(out, r.tag)
		}
	}
	return out
}
