package faults

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestWaitingClientLeaves: with pool_size 1 and the server held in a transaction, two
// clients send autocommit requests (an INSERT, and a slow statement PostgreSQL would
// show in pg_stat_activity) and queue for the server; then they leave, the way a killed
// client (reset), a closed socket (FIN) or a driver giving up (Terminate, then close)
// does. Their requests are dropped, never run: SHOW POOLS stops counting them at once,
// SHOW CLIENTS lists none waiting, and when the holder commits, the table stays empty
// and PostgreSQL never shows the slow statement (PgBouncer drops them too).
func TestWaitingClientLeaves(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "leftwait")
	pg.ExecDB(t, db, "CREATE TABLE t (id int); GRANT ALL ON t TO PUBLIC")
	super := superConn(t, pg, db)

	leave := map[string]func(c *rawClient){
		"reset": func(c *rawClient) { c.vanish() },
		"close": func(c *rawClient) { _ = c.nc.Close() },
		"terminate": func(c *rawClient) {
			c.fe.Send(&pgproto3.Terminate{})
			_ = c.fe.Flush()
			_ = c.nc.Close()
		},
		"half-close": func(c *rawClient) { _ = c.nc.(*net.TCPConn).CloseWrite() },
	}
	// seen: the console looks before the holder commits (SHOW POOLS and SHOW CLIENTS
	// take the clients out of the queue), or nobody does and the holder commits right
	// away (the lease that waited finds the client gone and sends nothing).
	for _, seen := range []bool{true, false} {
		for name, how := range leave {
			if !seen {
				name += " unseen"
			}
			t.Run(name, func(t *testing.T) { leaveWhileWaiting(t, pg, db, super, how, seen) })
		}
	}
}

// leaveWhileWaiting queues two requests behind a held server, has their clients leave
// with how, and requires that neither runs; look: the console looks in between.
func leaveWhileWaiting(t *testing.T, pg *pgtest.Server, db string, super *pgx.Conn, how func(*rawClient), look bool) {
	m := startMux(t, pg, bouncer{PoolSize: 1})
	adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	holder := connect(t, m.App(db))
	exec(t, holder, "BEGIN")
	exec(t, holder, "SELECT 1")

	ins, slow := dialRaw(t, m, db), dialRaw(t, m, db)
	ins.send(t, &pgproto3.Query{String: "INSERT INTO t VALUES (1)"})
	slow.send(t, &pgproto3.Query{String: "SELECT pg_sleep(1) /* left-waiting */"})
	eventually(t, 10*time.Second, "the two clients never queued", func() bool {
		return clWaiting(t, adm, db) == 2
	})

	// Sample PostgreSQL's view of every backend until the end of the test.
	var seen atomic.Value
	stop, sampled := make(chan struct{}), make(chan struct{})
	sampler := connect(t, pg.URL(pgtest.SuperUser, "", db))
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := ctxT()
			var q string
			err := sampler.QueryRow(ctx, `SELECT coalesce(string_agg(query, ' | '), '') FROM pg_stat_activity
				WHERE query LIKE '%left-waiting%' AND pid <> pg_backend_pid()`).Scan(&q)
			cancel()
			if err == nil && q != "" {
				seen.Store(q)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	how(ins)
	how(slow)
	if look {
		eventually(t, 500*time.Millisecond, "clients that left still count as waiting", func() bool {
			return clWaiting(t, adm, db) == 0
		})
		require.Zero(t, waitingRows(t, adm, db), "SHOW CLIENTS lists a client that left as waiting")
	} else {
		time.Sleep(20 * time.Millisecond) // for the FIN or reset to cross the loopback
	}

	exec(t, holder, "COMMIT")
	// FIFO: had a request of the clients that left stayed queued, it would run
	// before this one.
	exec(t, holder, "SELECT 1")
	require.Zero(t, queryInt(t, super, "SELECT count(*) FROM t"), "the INSERT of a client that left ran")
	close(stop)
	<-sampled
	require.Nil(t, seen.Load(), "PostgreSQL ran the statement of a client that left")
	eventually(t, 10*time.Second, "the sessions of the clients that left never ended", func() bool {
		return clientRows(t, adm, db) == 1
	})
	requireCleanServer(t, m.App(db))
}

// clWaiting is SHOW POOLS' cl_waiting of db's app pool.
func clWaiting(t testing.TB, adm *pgx.Conn, db string) int64 {
	t.Helper()
	var n int64 = -1
	showEach(t, adm, "SHOW POOLS", func(r map[string]any) {
		if r["database"] == db && r["user"] == pgtest.AppUser {
			n, _ = strconv.ParseInt(fmt.Sprint(r["cl_waiting"]), 10, 64)
		}
	})
	return n
}

// waitingRows counts SHOW CLIENTS' rows of db in state waiting.
func waitingRows(t testing.TB, adm *pgx.Conn, db string) int {
	t.Helper()
	n := 0
	showEach(t, adm, "SHOW CLIENTS", func(r map[string]any) {
		if r["database"] == db && r["state"] == "waiting" {
			n++
		}
	})
	return n
}

// clientRows counts SHOW CLIENTS' rows of db.
func clientRows(t testing.TB, adm *pgx.Conn, db string) int {
	t.Helper()
	n := 0
	showEach(t, adm, "SHOW CLIENTS", func(r map[string]any) {
		if r["database"] == db {
			n++
		}
	})
	return n
}

// showEach calls fn with each row of a console SHOW, by column name.
func showEach(t testing.TB, adm *pgx.Conn, show string, fn func(map[string]any)) {
	t.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	rows, err := adm.Query(ctx, show, pgxSimple)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		r := make(map[string]any, len(vals))
		for i, fd := range rows.FieldDescriptions() {
			r[strings.ToLower(fd.Name)] = vals[i]
		}
		fn(r)
	}
	require.NoError(t, rows.Err())
}
