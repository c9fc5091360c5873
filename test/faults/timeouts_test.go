package faults

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestQueryTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Extra: []string{"query_timeout = 1"}})
	conn := connect(t, m.App(pgtest.AppDB))
	start := time.Now()
	ctx, cancel := ctxT()
	defer cancel()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
	requireCode(t, err, "57014")
	require.Less(t, time.Since(start), 10*time.Second)
	require.EqualValues(t, 2, queryInt(t, conn, "SELECT 2"), "the connection stays usable")
}

func TestQueryWaitTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"query_wait_timeout = 1"}})
	holder := connect(t, m.App(pgtest.AppDB))
	exec(t, holder, "BEGIN")
	exec(t, holder, "SELECT 1")
	waiter := connect(t, m.App(pgtest.AppDB))
	ctx, cancel := ctxT()
	defer cancel()
	_, err := waiter.Exec(ctx, "SELECT 1")
	pe := requireCode(t, err, "57014")
	require.Contains(t, pe.Message, "query_wait_timeout")
	// Simple protocol too.
	_, err = waiter.Exec(ctx, "SELECT 1", pgxSimple)
	requireCode(t, err, "57014")
	exec(t, holder, "COMMIT")
	require.EqualValues(t, 3, queryInt(t, waiter, "SELECT 3"), "the waiter's connection stays usable")
}

func TestIdleTransactionTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "idletx")
	admin := superConn(t, pg, db)
	m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"idle_transaction_timeout = 1"}})
	conn := connect(t, m.App(db))
	exec(t, conn, "BEGIN")
	exec(t, conn, "CREATE TEMP TABLE idle_tmp (x int)")
	exec(t, conn, "SELECT pg_advisory_xact_lock(42)")
	time.Sleep(2500 * time.Millisecond)
	ctx, cancel := ctxT()
	defer cancel()
	_, err := conn.Exec(ctx, "SELECT 1")
	requireCode(t, err, "25P03")
	noIdleInTx(t, admin, pgtest.AppUser)
	requireCleanServer(t, m.App(db))
}

func TestTransactionTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "txto")
	admin := superConn(t, pg, db)
	m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"transaction_timeout = 1"}})
	conn := connect(t, m.App(db))
	exec(t, conn, "BEGIN")
	var err error
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		ctx, cancel := ctxT()
		_, err = conn.Exec(ctx, "SELECT pg_sleep(0.2)")
		cancel()
		if err != nil {
			break
		}
	}
	pe := requireCode(t, err, "25P04")
	require.Contains(t, pe.Message, "transaction_timeout")
	require.Less(t, time.Since(start), 5*time.Second)
	noIdleInTx(t, admin, pgtest.AppUser)
	requireCleanServer(t, m.App(db))
}

func TestClientIdleTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Extra: []string{"client_idle_timeout = 1"}})
	conn := connect(t, m.App(pgtest.AppDB))
	exec(t, conn, "SELECT 1")
	time.Sleep(2500 * time.Millisecond)
	ctx, cancel := ctxT()
	defer cancel()
	_, err := conn.Exec(ctx, "SELECT 1")
	requireCode(t, err, "57P05")
}

// TestClientLoginTimeout: a client that does not finish its login within
// client_login_timeout is closed. One that sent its StartupMessage is told why first,
// with PgBouncer's FATAL (08P01 "client_login_timeout"; pgmux closed it without a word);
// one that did not gets nothing, as from PostgreSQL. A login waiting for its pool's first
// server is held to the same deadline: it waited for server_connect_timeout (here 10s)
// and got 08006; it gets PgBouncer's 08P01 "client_login_timeout (server down)" now.
func TestClientLoginTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	fake := startFakePG(t)
	fake.set(func(f *fakePG) { f.blackhole = true })
	m := startMux(t, pg, bouncer{
		Users: map[string]string{pgtest.AppUser: pgtest.AppPassword, pgtest.SuperUser: "unused"},
		Databases: []string{fmt.Sprintf("hole = host=127.0.0.1 port=%d", fake.Port),
			fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port)},
		Extra: []string{"client_login_timeout = 1", "server_connect_timeout = 10", "query_wait_timeout = 30",
			"auth_user = " + pgtest.SuperUser}})
	by := startBystander(t, m.App(pgtest.AppDB))
	cases := map[string][]byte{
		"silent":        nil,
		"half startup":  append(binary.BigEndian.AppendUint32(nil, 100), 0, 3, 0, 0, 'u', 's'),
		"no password":   startupPacket("user", pgtest.AppUser, "database", pgtest.AppDB),
		"half a header": {0, 0},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", m.Addr())
			require.NoError(t, err)
			defer nc.Close()
			if send != nil {
				_, err = nc.Write(send)
				require.NoError(t, err)
			}
			start := time.Now()
			if name == "no password" {
				e := expectFatal(t, nc, "08P01") // after AuthenticationMD5Password
				require.Equal(t, "client_login_timeout", e.Message)
			} else {
				require.Empty(t, requireClosed(t, nc, 10*time.Second), "sent before the StartupMessage was whole")
			}
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
	t.Run("pool's first server down", func(t *testing.T) {
		start := time.Now()
		_, err := tryConnect(m.App("hole"))
		pe := requireCode(t, err, "08P01")
		require.Equal(t, "FATAL", pe.Severity)
		require.Equal(t, "client_login_timeout (server down)", pe.Message)
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("auth_query's server down", func(t *testing.T) {
		// A user not in auth_file: auth_query runs as auth_user on the same server.
		start := time.Now()
		_, err := tryConnect(m.URL("nobody", "x", "hole"))
		pe := requireCode(t, err, "08P01")
		require.Equal(t, "FATAL", pe.Severity)
		require.Equal(t, "client_login_timeout", pe.Message)
		require.Less(t, time.Since(start), 5*time.Second)
	})
	by.finish(t)
}

func TestServerConnectTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	fake := startFakePG(t)
	fake.set(func(f *fakePG) { f.blackhole = true })
	m := startMux(t, pg, bouncer{
		Databases: []string{fmt.Sprintf("hole = host=127.0.0.1 port=%d", fake.Port),
			fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port)},
		Extra: []string{"server_connect_timeout = 1", "server_login_retry = 1", "query_wait_timeout = 10"}})
	by := startBystander(t, m.App(pgtest.AppDB))
	start := time.Now()
	_, err := tryConnect(m.App("hole"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "08006")
	require.Less(t, time.Since(start), 5*time.Second)
	by.finish(t)
}

func TestCancelWaitTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	fake := startFakePG(t)
	m := startMux(t, pg, bouncer{
		Databases: []string{fmt.Sprintf("fake = host=127.0.0.1 port=%d", fake.Port)},
		Extra:     []string{"cancel_wait_timeout = 1"}})
	conn := connect(t, m.App("fake"))
	_, err := conn.Exec(context.Background(), "hello", pgxSimple)
	require.NoError(t, err)
	fake.set(func(f *fakePG) { f.silent = true })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = conn.Exec(ctx, "stuck", pgxSimple)
	require.Error(t, err)
	eventually(t, 5*time.Second, "the cancel request never reached the server", func() bool {
		_, n := fake.counts()
		return n > 0
	})
	eventually(t, 5*time.Second, "pgmux did not give up on the unanswered cancel", func() bool {
		b, _ := os.ReadFile(m.LogPath)
		return strings.Contains(string(b), "cancel_wait_timeout")
	})
}

// requireClosed waits until pgmux closes nc, draining whatever it says first.
func requireClosed(t testing.TB, nc net.Conn, within time.Duration) []byte {
	t.Helper()
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(within)))
	b, err := io.ReadAll(nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("pgmux did not close the connection within %v", within)
	}
	return b
}

// startupPacket builds a protocol 3.0 StartupMessage.
func startupPacket(kv ...string) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), 196608)
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// TestWaitTimeoutWhileServerDown: PostgreSQL is down and the pool holds connects back
// (server_login_retry); a client queued meanwhile gives up after query_wait_timeout. It
// is told the server cannot be reached (08006, naming the connect error), not that the
// pool's connections "stayed busy" with a hint to raise default_pool_size, as it used to
// be while the pool had no server at all. A genuinely busy pool keeps that hint
// (TestQueryWaitTimeout, and again here once PostgreSQL is back).
func TestWaitTimeoutWhileServerDown(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"server_login_retry = 30", "query_wait_timeout = 2"}})
	c := connect(t, m.App(pgtest.AppDB))
	exec(t, c, "SELECT 1")
	restart := stopServer(t, pg)
	ctx, cancel := ctxT()
	defer cancel()
	_, err := c.Exec(ctx, "SELECT 1")
	requireCode(t, err, "08006") // the first to find the server down: the pool backs off now
	start := time.Now()
	_, err = c.Exec(ctx, "SELECT 1")
	pe := requireCode(t, err, "08006")
	require.GreaterOrEqual(t, time.Since(start), 1500*time.Millisecond, "it queued for query_wait_timeout")
	require.Contains(t, pe.Message, fmt.Sprintf("could not connect to the server for database %q", pgtest.AppDB))
	require.Contains(t, pe.Message, "connect to server", "the message names the connect error: %s", pe.Message)
	require.NotContains(t, pe.Detail, "stayed busy")
	require.NotContains(t, pe.Hint, "default_pool_size")

	restart()
	eventually(t, 40*time.Second, "the client never got a server again", func() bool {
		ctx, cancel := ctxT()
		defer cancel()
		_, err := c.Exec(ctx, "SELECT 1")
		return err == nil
	})
	// Now busy for real: the one server held in a transaction.
	exec(t, c, "BEGIN")
	other := connect(t, m.App(pgtest.AppDB))
	_, err = other.Exec(ctx, "SELECT 1")
	pe = requireCode(t, err, "57014")
	require.Contains(t, pe.Detail, "stayed busy")
	require.Contains(t, pe.Hint, "default_pool_size")
	exec(t, c, "COMMIT")
}
