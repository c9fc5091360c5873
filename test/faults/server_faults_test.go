package faults

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestServerFaults breaks a private PostgreSQL under pgmux in several ways. A client
// inside a transaction gets a clean error (never a hang); an idle client does not
// notice; the pool refills when the server is back; nothing leaks.
func TestServerFaults(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	admin := func(t *testing.T) *pgx.Conn { return superConn(t, pg, pgtest.AppDB) }

	for _, mode := range []string{"fast", "immediate"} {
		t.Run("restart "+mode, func(t *testing.T) {
			done := leakCheck(t)
			func() {
				m := startMux(t, pg, bouncer{Extra: []string{"server_login_retry = 1"}})
				idle := connect(t, m.App(pgtest.AppDB))
				inTx := connect(t, m.App(pgtest.AppDB))
				exec(t, idle, "SELECT 1")
				exec(t, inTx, "BEGIN")
				exec(t, inTx, "SELECT 1")
				pg.Restart(t, mode)
				ctx, cancel := ctxT()
				defer cancel()
				_, err := inTx.Exec(ctx, "SELECT 1")
				require.Error(t, err, "the transaction died with the server")
				require.NoError(t, ctx.Err(), "the client in a transaction hung")
				// The idle client's next query works: its server was never in use.
				eventually(t, 15*time.Second, "the idle client never got a working server", func() bool {
					ctx, cancel := ctxT()
					defer cancel()
					_, err := idle.Exec(ctx, "SELECT 1")
					return err == nil
				})
				require.EqualValues(t, 7, queryInt(t, idle, "SELECT 7"))
				fresh := connect(t, m.App(pgtest.AppDB))
				require.EqualValues(t, 8, queryInt(t, fresh, "SELECT 8"))
				closeAll(idle, inTx, fresh)
				m.Srv.Close()
			}()
			done()
		})
	}

	t.Run("backend terminated", func(t *testing.T) {
		a := admin(t)
		m := startMux(t, pg, bouncer{PoolSize: 1})
		idle := connect(t, m.App(pgtest.AppDB))
		inTx := connect(t, m.App(pgtest.AppDB))
		pid := queryInt(t, idle, "SELECT pg_backend_pid()")
		exec(t, a, "SELECT pg_terminate_backend($1::int)", pid)
		eventually(t, 5*time.Second, "the terminated backend lingers", func() bool {
			return queryInt(t, a, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", pid) == 0
		})
		// Terminated while idle in the pool: nobody notices.
		require.NotEqual(t, pid, queryInt(t, idle, "SELECT pg_backend_pid()"))
		// Terminated inside a transaction: that client gets an error, the next one works.
		exec(t, inTx, "BEGIN")
		pid = queryInt(t, inTx, "SELECT pg_backend_pid()")
		exec(t, a, "SELECT pg_terminate_backend($1::int)", pid)
		ctx, cancel := ctxT()
		defer cancel()
		_, err := inTx.Exec(ctx, "SELECT 1")
		require.Error(t, err)
		require.NoError(t, ctx.Err(), "the client in a transaction hung")
		require.EqualValues(t, 1, queryInt(t, idle, "SELECT 1"))
	})

	// A client that keeps its server (a session advisory lock pins it) and waits for
	// nothing: when PostgreSQL ends the backend, the client gets its FATAL and then the
	// close, at once and without sending anything, as on a direct connection. The loop
	// that reads the server used to stop at the read that brought the FATAL (a short read)
	// and miss the end behind it, so the client, told, stayed open on a dead server until
	// its next request (asyncpg then failed with "another operation is in progress").
	// Five rounds: the FIN and the FATAL came in one event about half the time.
	t.Run("pinned idle client's backend terminated", func(t *testing.T) {
		a := admin(t)
		m := startMux(t, pg, bouncer{})
		for round := 0; round < 5; round++ {
			c := connect(t, m.App(pgtest.AppDB))
			exec(t, c, "SELECT pg_advisory_lock(42)")
			pid := queryInt(t, c, "SELECT pg_backend_pid()")
			hc, err := c.PgConn().Hijack()
			require.NoError(t, err)
			exec(t, a, "SELECT pg_terminate_backend($1::int)", pid)
			require.NoError(t, hc.Conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			fr := pgproto3.NewFrontend(hc.Conn, hc.Conn)
			msg, err := fr.Receive()
			require.NoError(t, err, "round %d: the server's FATAL", round)
			e, ok := msg.(*pgproto3.ErrorResponse)
			require.True(t, ok, "round %d: got %T", round, msg)
			require.Equal(t, "FATAL", e.Severity)
			require.Equal(t, "57P01", e.Code, "round %d: PostgreSQL's own FATAL, as on a direct connection", round)
			_, err = fr.Receive()
			require.Error(t, err, "round %d: nothing after the FATAL but the close", round)
			require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "round %d: the client was left open on a dead server", round)
			_ = hc.Conn.Close()
		}
	})

	t.Run("connections refused then login retry", func(t *testing.T) {
		m := startMux(t, pg, bouncer{Extra: []string{"server_login_retry = 2", "query_wait_timeout = 30"}})
		idle := connect(t, m.App(pgtest.AppDB))
		exec(t, idle, "SELECT 1")
		restart := stopServer(t, pg)
		ctx, cancel := ctxT()
		defer cancel()
		start := time.Now()
		_, err := idle.Exec(ctx, "SELECT 1")
		requireCode(t, err, "08006")
		require.Less(t, time.Since(start), 5*time.Second, "a refused connection must fail fast")
		// Within server_login_retry, new requests queue instead of hammering the server.
		results := make(chan error, 4)
		for range 4 {
			go func() {
				c, err := tryConnect(m.App(pgtest.AppDB))
				if err != nil {
					results <- err
					return
				}
				defer c.Close(context.Background())
				ctx, cancel := ctxT()
				defer cancel()
				_, err = c.Exec(ctx, "SELECT 1")
				results <- err
			}()
		}
		time.Sleep(500 * time.Millisecond)
		restart()
		for range 4 {
			require.NoError(t, <-results, "a client that waited through server_login_retry failed")
		}
		eventually(t, 10*time.Second, "the idle client never recovered", func() bool {
			ctx, cancel := ctxT()
			defer cancel()
			_, err := idle.Exec(ctx, "SELECT 1")
			return err == nil
		})
	})

	t.Run("backend stopped with SIGSTOP", func(t *testing.T) {
		a := admin(t)
		m := startMux(t, pg, bouncer{PoolSize: 2, Extra: []string{"query_timeout = 1", "cancel_wait_timeout = 1"}})
		idle := connect(t, m.App(pgtest.AppDB))
		inTx := connect(t, m.App(pgtest.AppDB))
		exec(t, idle, "SELECT 1")
		exec(t, inTx, "BEGIN")
		pid := int(queryInt(t, inTx, "SELECT pg_backend_pid()"))
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		defer syscall.Kill(pid, syscall.SIGCONT) //nolint:errcheck
		start := time.Now()
		ctx, cancel := ctxT()
		defer cancel()
		_, err := inTx.Exec(ctx, "SELECT 1")
		requireCode(t, err, "57014")
		require.Less(t, time.Since(start), 8*time.Second)
		// The idle client does not notice: it gets another server.
		require.EqualValues(t, 5, queryInt(t, idle, "SELECT 5"))
		require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
		eventually(t, 10*time.Second, "the stopped backend was never closed", func() bool {
			return queryInt(t, a, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", pid) == 0
		})
	})

	// The relay holds the client's writer from the end of one answer to the start of the
	// next when the client pipelined its next request: a timer that ends the session while
	// the server never answers that request still gets its FATAL to the client.
	t.Run("backend stopped mid-pipeline", func(t *testing.T) {
		m := startMux(t, pg, bouncer{PoolSize: 2, Extra: []string{"query_timeout = 1", "cancel_wait_timeout = 1"}})
		c := dialRaw(t, m, pgtest.AppDB)
		defer c.vanish()
		c.send(t, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT pg_backend_pid()"},
			&pgproto3.Query{String: "SELECT pg_sleep(30)"})
		until[*pgproto3.ReadyForQuery](t, c) // BEGIN
		row := until[*pgproto3.DataRow](t, c)
		pid, err := strconv.Atoi(string(row.Values[0]))
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		defer syscall.Kill(pid, syscall.SIGCONT) //nolint:errcheck
		until[*pgproto3.ReadyForQuery](t, c)
		require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(opTimeout)))
		for {
			msg, err := c.fe.Receive()
			require.NoError(t, err, "the client was closed without being told why")
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				require.Equal(t, "57014", e.Code, e.Message)
				require.Equal(t, "FATAL", e.Severity)
				break
			}
		}
	})

	t.Run("server goes silent", func(t *testing.T) {
		fake := startFakePG(t)
		m := startMux(t, pg, bouncer{
			Databases: []string{fmt.Sprintf("fake = host=127.0.0.1 port=%d", fake.Port)},
			Extra:     []string{"query_timeout = 1", "cancel_wait_timeout = 1"}})
		inTx := connect(t, m.App("fake"))
		idle := connect(t, m.App("fake"))
		_, err := idle.Exec(context.Background(), "x", pgxSimple)
		require.NoError(t, err)
		fake.set(func(f *fakePG) { f.silent = true })
		start := time.Now()
		ctx, cancel := ctxT()
		defer cancel()
		_, err = inTx.Exec(ctx, "hang", pgxSimple)
		requireCode(t, err, "57014")
		require.Less(t, time.Since(start), 8*time.Second)
		fake.set(func(f *fakePG) { f.silent = false })
		_, err = idle.Exec(ctx, "y", pgxSimple)
		require.NoError(t, err, "the idle client noticed the fault")
	})

	// A server that breaks inside a message: while the message's start is still in
	// pgmux's writer it is dropped and the client gets the FATAL after the whole messages;
	// once part of it went out, nothing may follow it (a FATAL's bytes would be read as the
	// rest of the row): the client is closed.
	for _, tc := range []struct {
		name  string
		torn  int
		fatal bool
	}{{"server breaks inside a DataRow", 100, true}, {"server breaks inside a DataRow partly sent", 200 << 10, false}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFakePG(t)
			m := startMux(t, pg, bouncer{Databases: []string{fmt.Sprintf("fake = host=127.0.0.1 port=%d", fake.Port)}})
			c := dialRaw(t, m, "fake")
			defer c.vanish()
			fake.set(func(f *fakePG) { f.tornRow = tc.torn })
			q, err := (&pgproto3.Query{String: "x"}).Encode(nil)
			require.NoError(t, err)
			_, err = c.nc.Write(q)
			require.NoError(t, err)
			require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(opTimeout)))
			got, err := io.ReadAll(c.nc)
			require.NoError(t, err, "the client is closed")
			require.NotEmpty(t, got)
			require.Equal(t, byte('T'), got[0], "the RowDescription comes first")
			rest := got[1+binary.BigEndian.Uint32(got[1:5]):]
			if !tc.fatal {
				require.NotEmpty(t, rest)
				require.Equal(t, byte('D'), rest[0], "the start of the row went out")
				require.NotContains(t, string(rest), "server closed the connection", "a FATAL followed the torn DataRow")
				return
			}
			var e pgproto3.ErrorResponse
			require.Equal(t, byte('E'), rest[0], "the torn row's start was sent: %q", rest[:min(len(rest), 16)])
			require.Len(t, rest, 1+int(binary.BigEndian.Uint32(rest[1:5])), "only the FATAL follows")
			require.NoError(t, e.Decode(rest[5:]))
			require.Equal(t, "FATAL", e.Severity)
			require.Equal(t, "08006", e.Code)
		})
	}

	t.Run("slow logins", func(t *testing.T) {
		fake := startFakePG(t)
		fake.set(func(f *fakePG) { f.loginDelay = 300 * time.Millisecond })
		m := startMux(t, pg, bouncer{PoolSize: 3,
			Databases: []string{fmt.Sprintf("fake = host=127.0.0.1 port=%d", fake.Port),
				fmt.Sprintf("slower = host=127.0.0.1 port=%d dbname=fake", fake.Port)},
			Extra: []string{"server_connect_timeout = 2"}})
		errs := make(chan error, 10)
		for range 10 {
			go func() {
				c, err := tryConnect(m.App("fake"))
				if err == nil {
					_, err = c.Exec(context.Background(), "q", pgxSimple)
					c.Close(context.Background())
				}
				errs <- err
			}()
		}
		for range 10 {
			require.NoError(t, <-errs)
		}
		logins, _ := fake.counts()
		require.LessOrEqual(t, logins, 3+1, "pgmux logged in more servers than the pool holds")
		// A login slower than server_connect_timeout fails cleanly.
		fake.set(func(f *fakePG) { f.loginDelay = 4 * time.Second })
		start := time.Now()
		_, err := tryConnect(m.App("slower"))
		require.Error(t, err)
		require.Less(t, time.Since(start), 4*time.Second)
	})
}

func closeAll(conns ...*pgx.Conn) {
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.Close(ctx)
		cancel()
	}
}
