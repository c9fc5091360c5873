package faults

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/auth"
)

// rawClient is a client speaking the protocol by hand, so a test can vanish at any point.
type rawClient struct {
	nc net.Conn
	fe *pgproto3.Frontend
}

// dialRaw logs in to pgmux as app (md5 or SCRAM as pgmux asks) and waits for ReadyForQuery.
func dialRaw(t testing.TB, m *mux, db string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", m.Addr())
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Now().Add(opTimeout)))
	c := &rawClient{nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	_, err = nc.Write(startupPacket("user", pgtest.AppUser, "database", db))
	require.NoError(t, err)
	for {
		msg, err := c.fe.Receive()
		require.NoError(t, err)
		switch m := msg.(type) {
		case *pgproto3.AuthenticationMD5Password:
			c.send(t, &pgproto3.PasswordMessage{Password: md5Response(pgtest.AppUser, pgtest.AppPassword, m.Salt)})
		case *pgproto3.ErrorResponse:
			t.Fatalf("login: %s %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			require.NoError(t, nc.SetDeadline(time.Time{}))
			return c
		}
	}
}

func (c *rawClient) send(t testing.TB, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	require.NoError(t, c.fe.Flush())
}

// until reads messages until one of type T arrives, failing on an ErrorResponse.
func until[T pgproto3.BackendMessage](t testing.TB, c *rawClient) T {
	t.Helper()
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(opTimeout)))
	for {
		msg, err := c.fe.Receive()
		require.NoError(t, err)
		if m, ok := msg.(T); ok {
			return m
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("unexpected error %s: %s", e.Code, e.Message)
		}
	}
}

// vanish drops the connection without a Terminate, as a crashed client does.
func (c *rawClient) vanish() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST: gone for good
	}
	_ = c.nc.Close()
}

// TestClientVanishes lets a client disappear at the worst moments. Its server is rolled
// back and reset, or closed; never handed to the next client dirty.
func TestClientVanishes(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "vanish")
	pg.ExecDB(t, db, "CREATE TABLE t (id int, v text); GRANT ALL ON t TO PUBLIC")
	admin := superConn(t, pg, db)

	cases := []struct {
		name string
		run  func(t *testing.T, c *rawClient)
	}{
		{"mid-transaction", func(t *testing.T, c *rawClient) {
			c.send(t, &pgproto3.Query{String: "BEGIN; CREATE TEMP TABLE tmp (x int); SELECT pg_advisory_lock(7); " +
				"SET work_mem = '77MB'; INSERT INTO t VALUES (1, 'tx')"})
			until[*pgproto3.ReadyForQuery](t, c)
		}},
		{"mid-COPY", func(t *testing.T, c *rawClient) {
			c.send(t, &pgproto3.Query{String: "COPY t FROM STDIN"})
			until[*pgproto3.CopyInResponse](t, c)
			c.send(t, &pgproto3.CopyData{Data: []byte("2\tcopied\n3\thalf")})
		}},
		{"mid-result", func(t *testing.T, c *rawClient) {
			// 100 MB of rows; read a little, then go.
			c.send(t, &pgproto3.Query{String: "SELECT repeat('x', 1000) FROM generate_series(1, 100000)"})
			buf := make([]byte, 1<<20)
			_, err := io.ReadFull(c.nc, buf)
			require.NoError(t, err)
		}},
		{"mid-pipeline", func(t *testing.T, c *rawClient) {
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			until[*pgproto3.ReadyForQuery](t, c)
			for i := range 50 {
				c.fe.Send(&pgproto3.Parse{Query: "INSERT INTO t VALUES ($1::int, 'pipe')"})
				c.fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte("1000")}})
				c.fe.Send(&pgproto3.Execute{})
				if i%10 == 9 {
					c.fe.Send(&pgproto3.Sync{})
				}
			}
			c.fe.Send(&pgproto3.Parse{Query: "SELECT pg_sleep(0.2)"})
			c.fe.Send(&pgproto3.Bind{})
			c.fe.Send(&pgproto3.Execute{})
			require.NoError(t, c.fe.Flush())
			until[*pgproto3.BindComplete](t, c)
		}},
		{"mid-extended without Sync", func(t *testing.T, c *rawClient) {
			c.send(t, &pgproto3.Parse{Query: "SELECT pg_advisory_lock(8)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
			until[*pgproto3.CommandComplete](t, c)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, pg, bouncer{PoolSize: 1})
			by := startBystander(t, m.App(pgtest.AppDB))
			c := dialRaw(t, m, db)
			tc.run(t, c)
			c.vanish()
			noIdleInTx(t, admin, pgtest.AppUser)
			requireCleanServer(t, m.App(db))
			eventually(t, 10*time.Second, "server connections exceed the pool size", func() bool {
				return backends(t, admin, db, pgtest.AppUser) <= 1
			})
			var rows int64
			for _, v := range []string{"tx", "copied", "half", "pipe"} {
				rows += queryInt(t, admin, "SELECT count(*) FROM t WHERE v = $1", v)
			}
			require.Zero(t, rows, "work of a vanished client was committed")
			require.Zero(t, queryInt(t, admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
			by.finish(t)
		})
	}

	for _, mode := range []string{"session", "transaction"} {
		t.Run("mid-login "+mode, func(t *testing.T) {
			m := startMux(t, pg, bouncer{PoolSize: 1, PoolMode: mode})
			by := startBystander(t, m.App(pgtest.AppDB))
			for range 20 {
				nc, err := net.Dial("tcp", m.Addr())
				require.NoError(t, err)
				_, err = nc.Write(startupPacket("user", pgtest.AppUser, "database", db))
				require.NoError(t, err)
				var b [1]byte
				_, _ = nc.Read(b[:]) // the password request
				_ = nc.Close()
			}
			requireCleanServer(t, m.App(db))
			by.finish(t)
		})
	}
}

func md5Response(user, password string, salt [4]byte) string {
	return auth.MD5Response(user, password, salt)
}
