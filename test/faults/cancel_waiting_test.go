package faults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// cancelCase sends one request that will wait inside pgmux, as a client would: its
// text ins (with $1 for 1) as a simple Query, through the extended protocol, or in a pgx
// pipeline with a SELECT behind it. send reads the answers: the request's error on
// first, then whatever follows on rest.
type cancelCase struct {
	name string
	send func(ctx context.Context, c *pgconn.PgConn, ins string, first, rest chan<- error)
}

var cancelCases = []cancelCase{
	{"simple", func(ctx context.Context, c *pgconn.PgConn, ins string, first, rest chan<- error) {
		_, err := c.Exec(ctx, strings.ReplaceAll(ins, "$1", "1")).ReadAll()
		first <- err
		rest <- nil
	}},
	{"extended", func(ctx context.Context, c *pgconn.PgConn, ins string, first, rest chan<- error) {
		first <- c.ExecParams(ctx, ins, [][]byte{[]byte("1")}, nil, nil, nil).Read().Err
		rest <- nil
	}},
	{"pipeline", func(ctx context.Context, c *pgconn.PgConn, ins string, first, rest chan<- error) {
		p := c.StartPipeline(ctx)
		p.SendQueryParams(ins, [][]byte{[]byte("1")}, nil, nil, nil)
		p.SendPipelineSync()
		p.SendQueryParams("SELECT 2", nil, nil, nil, nil)
		p.SendPipelineSync()
		if err := p.Flush(); err != nil {
			first <- err
			rest <- err
			return
		}
		first <- pipelineResult(p)
		rest <- errors.Join(pipelineSync(p), pipelineResult(p), pipelineSync(p), p.Close())
	}},
}

// cancelWaiting connects a client to db, calls hold (which makes the client's request
// wait), has tc send ins, waits until SHOW POOLS counts the client waiting, sends a cancel request for it and requires PostgreSQL's answer to
// a canceled statement at once: 57014 "canceling statement due to user request". It
// returns the client (closed at cleanup) and the channel of what follows the request.
func cancelWaiting(t *testing.T, m *mux, db string, tc cancelCase, ins string, hold func()) (*pgconn.PgConn, <-chan error) {
	t.Helper()
	adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	ctx, cancel := ctxT()
	t.Cleanup(cancel)
	c, err := pgconn.Connect(ctx, m.App(db))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	hold()
	first, rest := make(chan error, 1), make(chan error, 1)
	go tc.send(ctx, c, ins, first, rest)
	// Waiting for a while: not in a moment's wait on the way (a server being released).
	eventually(t, 10*time.Second, "the client never waited", func() bool {
		n, waited := poolWaiting(t, adm, db)
		return n == 1 && waited >= 100*time.Millisecond
	})

	require.NoError(t, c.CancelRequest(ctx))
	select {
	case err := <-first:
		pe := requireCode(t, err, "57014")
		require.Equal(t, "canceling statement due to user request", pe.Message)
	case <-time.After(5 * time.Second):
		t.Fatal("the canceled request still waits")
	}
	return c, rest
}

// cancelDB makes a database with an empty table t for the INSERTs that are canceled.
// count counts its rows, and the advisory locks on key 7 held (a canceled INSERT that
// locks would take one).
func cancelDB(t *testing.T, name string) (pg *pgtest.Server, db string, count func() int64) {
	pg = pgtest.Start(t)
	db = pg.NewDatabase(t, name)
	pg.ExecDB(t, db, "CREATE TABLE t (id int); GRANT ALL ON t TO PUBLIC")
	super := superConn(t, pg, db)
	return pg, db, func() int64 {
		return queryInt(t, super, "SELECT (SELECT count(*) FROM t) + "+
			"(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7)")
	}
}

// poolWaiting returns SHOW POOLS' cl_waiting of db's app pool and its maxwait.
func poolWaiting(t testing.TB, adm *pgx.Conn, db string) (n int64, maxWait time.Duration) {
	t.Helper()
	showEach(t, adm, "SHOW POOLS", func(r map[string]any) {
		if r["database"] == db && r["user"] == pgtest.AppUser {
			num := func(col string) int64 {
				v, err := strconv.ParseInt(fmt.Sprint(r[col]), 10, 64)
				require.NoError(t, err, col)
				return v
			}
			n = num("cl_waiting")
			maxWait = time.Duration(num("maxwait"))*time.Second + time.Duration(num("maxwait_us"))*time.Microsecond
		}
	})
	return n, maxWait
}

// requireServedAfterCancel requires that, once whatever held the wait let go, the
// request behind the canceled one ran (rest), the client's next request runs, nothing
// waits in SHOW POOLS or SHOW CLIENTS, the canceled INSERT never ran, and the next
// client gets a clean server.
func requireServedAfterCancel(t *testing.T, m *mux, db string, c *pgconn.PgConn, rest <-chan error, count func() int64) {
	t.Helper()
	require.NoError(t, <-rest, "the request behind the canceled one")
	ctx, cancel := ctxT()
	defer cancel()
	_, err := c.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err, "the client's next request")
	adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	require.Zero(t, clWaiting(t, adm, db), "SHOW POOLS still counts a waiting client")
	require.Zero(t, waitingRows(t, adm, db), "SHOW CLIENTS still lists a waiting client")
	require.Zero(t, count(), "the canceled INSERT ran")
	requireCleanServer(t, m.App(db))
}

// cancelBehindTransaction has a client of db hold a server in a transaction while tc's
// INSERT waits and is canceled (cancelWaiting); then it calls between (nil: nothing),
// commits, and requires what follows the cancel (requireServedAfterCancel).
func cancelBehindTransaction(t *testing.T, m *mux, db string, tc cancelCase, count func() int64, between func()) {
	t.Helper()
	holder := connect(t, m.App(db))
	c, rest := cancelWaiting(t, m, db, tc, "INSERT INTO t VALUES ($1)", func() {
		exec(t, holder, "BEGIN")
		exec(t, holder, "SELECT 1")
	})
	if between != nil {
		between()
	}
	exec(t, holder, "COMMIT")
	requireServedAfterCancel(t, m, db, c, rest, count)
}

// TestCancelWhileWaiting: with pool_size 1 and the server held in a transaction, a client
// sends an autocommit INSERT, which queues for the server, and then a cancel request for
// it, as postgres.js' query.cancel(), psql's ^C and the query timeouts of asyncpg and
// JDBC do. PostgreSQL would cancel the statement; pgmux dropped the cancel (no server to
// forward it to) and ran the INSERT once the holder committed. Now the request is
// answered at once, while the holder still holds the server, with PostgreSQL's 57014
// "canceling statement due to user request", the INSERT never runs, and the client's
// next request (and, in a pipeline, the request behind the canceled one) runs as usual.
// With the client loop on, the request queues on the loop (pool.AcquireOrQueue); off,
// on its session's goroutine.
func TestCancelWhileWaiting(t *testing.T) {
	pg, db, count := cancelDB(t, "cancelwait")

	for _, loop := range clientLoops {
		for _, tc := range cancelCases {
			t.Run("client_loop="+loop+"/"+tc.name, func(t *testing.T) {
				m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"client_loop = " + loop}})
				cancelBehindTransaction(t, m, db, tc, count, nil)
			})
		}
	}
}

// TestCancelWhileWaitingDirect: with direct_pool_size 1 held by a client that keeps an
// advisory lock, a second client's request that takes one (an INSERT that locks, which
// pins its server) waits for the direct slot. A cancel request for it was dropped (no
// server linked, and none queued in the pool): the INSERT ran, and took its lock, once
// the holder unlocked. Now it is answered 57014 at once, nothing of it reaches
// PostgreSQL, and the slot it waited for is not taken: once the holder unlocks, the
// same client pins and unpins as usual. A client inside a transaction, whose server is
// linked and idle, had the cancel forwarded to PostgreSQL, which ignores a cancel for a
// backend not running a statement; now its statement fails 57014 as PostgreSQL's would,
// and the transaction is aborted until ROLLBACK.
func TestCancelWhileWaitingDirect(t *testing.T) {
	pg, db, count := cancelDB(t, "cancelwaitdirect")
	const ins = "INSERT INTO t SELECT $1::int FROM pg_advisory_lock(7)"
	b := bouncer{PoolSize: 2, Extra: []string{"direct_pool_size = 1"}}

	// In a transaction the client's server is linked (and idle) while it waits; the
	// statement after the canceled one finds the transaction aborted, as in PostgreSQL.
	inTx := cancelCase{"transaction", func(ctx context.Context, c *pgconn.PgConn, ins string, first, rest chan<- error) {
		if _, err := c.Exec(ctx, "BEGIN; INSERT INTO t VALUES (2)").ReadAll(); err != nil {
			first <- err
			rest <- err
			return
		}
		_, err := c.Exec(ctx, strings.ReplaceAll(ins, "$1", "1")).ReadAll()
		first <- err
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); pgCode(err) != "25P02" {
			rest <- fmt.Errorf("the statement after the canceled one: want 25P02, got %v", err)
			return
		}
		_, err = c.Exec(ctx, "ROLLBACK").ReadAll()
		rest <- err
	}}
	for _, tc := range append(cancelCases[:len(cancelCases):len(cancelCases)], inTx) {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, pg, b)
			holder, other := connect(t, m.App(db)), connect(t, m.App(db))
			c, rest := cancelWaiting(t, m, db, tc, ins, func() {
				exec(t, holder, "SELECT pg_advisory_lock(1)")
				// A second server idle in the pool: the client's request leases it at
				// once and waits only for the direct slot.
				exec(t, other, "SELECT 1")
			})
			exec(t, holder, "SELECT pg_advisory_unlock_all()")
			requireServedAfterCancel(t, m, db, c, rest, count)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Exec(ctx, "SELECT pg_advisory_lock(8); SELECT pg_advisory_unlock_all()").ReadAll()
			require.NoError(t, err, "the direct slot is free again")
		})
	}
}

// TestCancelWhileWaitingPaused: while its database is PAUSEd, a logged-in client's
// INSERT waits for RESUME. A cancel request for it was dropped (the wait is not in the
// pool's queue): the INSERT ran after RESUME. Now it is answered 57014 at once, while
// the database is still paused, and after RESUME the client goes on as usual.
func TestCancelWhileWaitingPaused(t *testing.T) {
	pg, db, count := cancelDB(t, "cancelwaitpause")

	for _, tc := range cancelCases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, pg, bouncer{})
			adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
			ctx, cancel := ctxT()
			defer cancel()
			resumed := false
			defer func() {
				if !resumed {
					_, _ = adm.Exec(context.Background(), "RESUME "+db, pgxSimple)
				}
			}()
			c, rest := cancelWaiting(t, m, db, tc, "INSERT INTO t VALUES ($1)", func() {
				_, err := adm.Exec(ctx, "PAUSE "+db, pgxSimple)
				require.NoError(t, err)
			})
			_, err := adm.Exec(ctx, "RESUME "+db, pgxSimple)
			require.NoError(t, err)
			resumed = true
			requireServedAfterCancel(t, m, db, c, rest, count)
		})
	}
}

// pipelineResult reads the next query's result from p.
func pipelineResult(p *pgconn.Pipeline) error {
	r, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := r.(*pgconn.ResultReader)
	if !ok {
		return errors.New("not a query result")
	}
	return rr.Read().Err
}

// pipelineSync reads the next Sync's answer from p.
func pipelineSync(p *pgconn.Pipeline) error {
	r, err := p.GetResults()
	if err != nil {
		return err
	}
	if _, ok := r.(*pgconn.PipelineSync); !ok {
		return errors.New("not a pipeline sync")
	}
	return nil
}
