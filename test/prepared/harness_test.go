package prepared

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
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
	pg   *pgtest.Server
	srv  *proxy.Server
	port int
}

// startMux writes s as pgbouncer.ini, loads it the way cmd/pgmux does and serves it on
// 127.0.0.1 at a port the kernel picks (ListenPort 0: no window in which another process
// can take a port chosen earlier). pgmux shuts down at cleanup.
func startMux(t testing.TB, s setup) *mux {
	t.Helper()
	pg := pgtest.Start(t)
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(ini, []byte(s.ini(pg)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "userlist.txt"),
		[]byte(`"`+pgtest.AppUser+`" "`+pgtest.AppPassword+`"`+"\n"), 0o644))
	cfg, err := config.Load(ini)
	require.NoError(t, err)
	creds, err := config.LoadUserlist(filepath.Join(dir, cfg.AuthFile))
	require.NoError(t, err)
	cfg.ListenPort = 0
	srv, err := proxy.New(proxy.Options{Config: cfg, Credentials: creds, Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		select {
		case err := <-served:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after Shutdown")
		}
	})
	tcp, ok := srv.Addrs()[0].(*net.TCPAddr)
	require.True(t, ok)
	return &mux{pg: pg, srv: srv, port: tcp.Port}
}

// testLogger is zaptest's logger, made safe for pgmux goroutines that outlive the test:
// after cleanup, output is dropped instead of reaching a finished testing.T.
func testLogger(t testing.TB) *zap.Logger {
	w := &tbWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel))
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done atomic.Bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// url is a postgres:// URL to db through pgmux as the app user.
func (m *mux) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgtest.AppUser, pgtest.AppPassword),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// env is the libpq environment for db through pgmux.
func (m *mux) env(db string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(m.port), "PGUSER="+pgtest.AppUser,
		"PGPASSWORD="+pgtest.AppPassword, "PGDATABASE="+db, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

// connect opens a pgx connection through pgmux in the given mode, closed at cleanup.
func (m *mux) connect(t testing.TB, db string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	conn, err := m.tryConnect(db, mode)
	require.NoError(t, err)
	t.Cleanup(func() { closeConn(conn) })
	return conn
}

func (m *mux) tryConnect(db string, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(m.url(db))
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

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
