package prepared

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// opTimeout bounds one client operation.
const opTimeout = 30 * time.Second

// setup is one pgmux configuration: the [pgbouncer] settings that differ between tests.
type setup struct {
	poolSize  int      // default_pool_size; default 5
	mode      string   // prepared_statement_mode; default "cache"
	maxStmts  int      // max_prepared_statements; default 100
	extra     []string // more [pgbouncer] lines
	maxClient int      // max_client_conn; default 2000
}

// ini renders a pgbouncer.ini in transaction mode for databases on pg. listen_port is a
// placeholder: startMux serves on a port the kernel picks.
func (s setup) ini(pg *pgtest.Server) string {
	or := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	mode := s.mode
	if mode == "" {
		mode = "cache"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = userlist.txt
pool_mode = transaction
default_pool_size = %d
max_client_conn = %d
max_prepared_statements = %d
prepared_statement_mode = %s
query_wait_timeout = 60
log_connections = 0
log_disconnections = 0
`, pg.Host, pg.Port, or(s.poolSize, 5), or(s.maxClient, 2000), or(s.maxStmts, 100), mode)
	for _, e := range s.extra {
		b.WriteString(e + "\n")
	}
	return b.String()
}

// mux is pgmux serving in this process.
type mux struct {
	*muxtest.Mux
	pg *pgtest.Server
}

// startMux writes s as pgbouncer.ini, loads it the way cmd/pgmux does and serves it on
// 127.0.0.1 at a port the kernel picks (no window in which another process can take a
// port chosen earlier), logging through t. pgmux shuts down at cleanup.
func startMux(t testing.TB, s setup) *mux {
	t.Helper()
	pg := pgtest.Start(t)
	ini := muxtest.WriteConfig(t, t.TempDir(), s.ini(pg),
		muxtest.Userlist(map[string]string{pgtest.AppUser: pgtest.AppPassword}))
	return &mux{Mux: muxtest.Start(t, pg, muxtest.Options{IniPath: ini, Logger: muxtest.TestLogger(t)}), pg: pg}
}

// url is a postgres:// URL to db through pgmux as the app user.
func (m *mux) url(db string) string { return m.URL(pgtest.AppUser, pgtest.AppPassword, db) }

// env is the libpq environment for db through pgmux.
func (m *mux) env(db string) []string { return m.Env(pgtest.AppUser, pgtest.AppPassword, db) }

// connect opens a pgx connection through pgmux in the given mode, closed at cleanup.
func (m *mux) connect(t testing.TB, db string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, m.url(db), mode, opTimeout)
}

func (m *mux) tryConnect(db string, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	return muxtest.TryConnect(m.url(db), mode, opTimeout)
}

func closeConn(c *pgx.Conn) { muxtest.CloseConn(c) }

// pgconn opens a low-level connection through pgmux, closed at cleanup.
func (m *mux) pgconn(t testing.TB, db string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pc, err := pgconn.Connect(ctx, m.url(db))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pc.Close(ctx)
	})
	return pc
}

// database makes a private database with the given setup SQL, run directly on PostgreSQL.
func database(t testing.TB, pg *pgtest.Server, prefix string, sql ...string) string {
	t.Helper()
	db := pg.NewDatabase(t, prefix)
	if len(sql) == 0 {
		return db
	}
	conn := pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, db) // objects owned by app
	for _, q := range sql {
		_, err := conn.Exec(ctx(t), q)
		require.NoError(t, err, q)
	}
	closeConn(conn)
	return db
}

// ctx returns a context bounded by opTimeout.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return c
}

// modes are pgmux's prepared_statement_mode values.
var modes = []string{"cache", "unnamed"}

// bgCtx is a context bounded by opTimeout for goroutines (no testing.T).
func bgCtx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	_ = cancel // released by its timer
	return c
}

func connectPgconn(m *mux, db string) (*pgconn.PgConn, error) {
	return pgconn.Connect(bgCtx(), m.url(db))
}

func closePgconn(pc *pgconn.PgConn) { _ = pc.Close(bgCtx()) }
