// Package faults tests that pgmux survives server faults, client faults, hostile input
// and timeouts: nothing lost, nothing leaked, nobody let in. Every test runs pgmux in
// process (or the built binary where a process limit matters) against a real PostgreSQL.
package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// opTimeout bounds one client operation: a hang becomes a failure, not a stuck test.
const opTimeout = 20 * time.Second

// bouncer is a pgbouncer.ini and its userlist. Zero values take the defaults noted.
type bouncer struct {
	PoolMode  string            // default "transaction"
	PoolSize  int               // default_pool_size; default 4
	AuthType  string            // default "md5"
	Users     map[string]string // userlist.txt; default app/apppass
	Databases []string          // [databases]; default "* = host=pg port=pg"
	Extra     []string          // more [pgbouncer] lines
}

// ini is b as muxtest writes it: max_client_conn 500, and the console for user admin
// (adminpass), who is added to Users.
func (b bouncer) ini() *muxtest.Ini {
	size := b.PoolSize
	if size == 0 {
		size = 4
	}
	users := b.Users
	if users == nil {
		users = map[string]string{pgtest.AppUser: pgtest.AppPassword}
	}
	if _, ok := users["admin"]; !ok {
		users["admin"] = "adminpass"
	}
	return &muxtest.Ini{PoolMode: b.PoolMode, PoolSize: size, MaxClientConn: 500,
		AuthType: b.AuthType, Users: users, Databases: b.Databases,
		Extra: append([]string{"admin_users = admin"}, b.Extra...)}
}

// mux is a pgmux served in this process.
type mux struct{ *muxtest.Mux }

// startMux serves b with pgmux in process on a kernel-chosen port, with RELOAD reading
// its ini again; it is closed (not drained) at cleanup. URLs carry connect_timeout=10.
func startMux(t testing.TB, pg *pgtest.Server, b bouncer) *mux {
	t.Helper()
	return &mux{muxtest.Start(t, pg, muxtest.Options{Ini: b.ini(), Reload: true,
		Stop: muxtest.Close, TailLines: 60, ConnectTimeout: 10})}
}

// App is the URL of the app user in db.
func (m *mux) App(db string) string { return m.URL(pgtest.AppUser, pgtest.AppPassword, db) }

// connect opens a pgx connection, closed at cleanup. Statements run unnamed.
func connect(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, rawURL, pgx.QueryExecModeExec, opTimeout)
}

func tryConnect(rawURL string) (*pgx.Conn, error) {
	return muxtest.TryConnect(rawURL, pgx.QueryExecModeExec, opTimeout)
}

func ctxT() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// pgCode returns err's SQLSTATE, or "" when it is not a PostgreSQL error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func requireCode(t testing.TB, err error, code string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe, "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pe.Code, "error: %s", pe.Message)
	return pe
}

// exec runs sql on conn within opTimeout.
func exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	_, err := conn.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

func queryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	var n int64
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leakCheck records goroutines and descriptors now; the returned function, called after
// pgmux and every client of the test are closed, waits (bounded) for both to settle back.
func leakCheck(t testing.TB) func() {
	t.Helper()
	g0, fd0 := runtime.NumGoroutine(), openFDs()
	return func() {
		t.Helper()
		var g, fd int
		deadline := time.Now().Add(15 * time.Second)
		for {
			g, fd = runtime.NumGoroutine(), openFDs()
			if g <= g0+2 && fd <= fd0+2 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("leak: goroutines %d -> %d, fds %d -> %d\n%s", g0, g, fd0, fd, buf)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// bystander runs a well-behaved client beside a hostile test: a query every few
// milliseconds, each checked. stop ends it and returns how many queries ran and the errors.
type bystander struct {
	stopc chan struct{}
	done  chan struct{}
	ok    atomic.Int64
	mu    sync.Mutex
	errs  []error
}

func startBystander(t testing.TB, rawURL string) *bystander {
	t.Helper()
	conn := connect(t, rawURL)
	b := &bystander{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for i := 0; ; i++ {
			select {
			case <-b.stopc:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			var got int
			err := conn.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&got)
			cancel()
			if err == nil && got != i+1 {
				err = fmt.Errorf("wrong result %d for %d", got, i)
			}
			if err != nil {
				b.mu.Lock()
				b.errs = append(b.errs, err)
				b.mu.Unlock()
				return
			}
			b.ok.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return b
}

// finish stops the bystander and requires it ran without a single error.
func (b *bystander) finish(t testing.TB) {
	t.Helper()
	close(b.stopc)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(t, b.errs, "the well-behaved client saw errors")
	require.Positive(t, b.ok.Load(), "the well-behaved client ran no query")
}

// noIdleInTx waits until PostgreSQL shows no backend of user idle in a transaction.
func noIdleInTx(t testing.TB, admin *pgx.Conn, user string) {
	t.Helper()
	eventually(t, 10*time.Second, "a backend stays idle in transaction", func() bool {
		return queryInt(t, admin, `SELECT count(*) FROM pg_stat_activity
			WHERE usename = $1 AND state LIKE 'idle in transaction%'`, user) == 0
	})
}

// backends counts the client backends of user in db.
func backends(t testing.TB, admin *pgx.Conn, db, user string) int64 {
	t.Helper()
	return queryInt(t, admin, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'`, db, user)
}

// superConn is a direct superuser connection to pg.
func superConn(t testing.TB, pg *pgtest.Server, db string) *pgx.Conn {
	t.Helper()
	return pg.Connect(t, pgtest.SuperUser, "", db)
}

// pgxSimple makes one Exec use the simple query protocol.
const pgxSimple = pgx.QueryExecModeSimpleProtocol

// requireCleanServer connects a new client and requires that the server it gets has no
// transaction open, no temporary objects, no advisory locks and no session settings
// left behind by an earlier client.
func requireCleanServer(t testing.TB, rawURL string) {
	t.Helper()
	conn := connect(t, rawURL)
	ctx, cancel := ctxT()
	defer cancel()
	var inTx, temps, locks, gucs int64
	err := conn.QueryRow(ctx, `SELECT (now() <> statement_timestamp())::int,
		(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
		(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
		(SELECT count(*) FROM pg_settings WHERE source = 'session' AND name = 'work_mem')`,
		pgxSimple).Scan(&inTx, &temps, &locks, &gucs)
	require.NoError(t, err)
	require.Zero(t, inTx, "the server was handed over inside a transaction")
	require.Zero(t, temps, "temporary objects survived on the server")
	require.Zero(t, locks, "advisory locks survived on the server")
	require.Zero(t, gucs, "a session setting survived on the server")
}

// stopServer stops pg's postmaster (fast shutdown) and returns what starts it again; if
// the test ends (or fails) before calling it, its cleanup does, so the next test finds
// the server up.
func stopServer(t testing.TB, pg *pgtest.Server) (restart func()) {
	t.Helper()
	pg.StopPostmaster(t, "fast")
	stopped := true
	t.Cleanup(func() {
		if stopped {
			pg.StartPostmaster(t)
		}
	})
	return func() {
		pg.StartPostmaster(t)
		stopped = false
	}
}
