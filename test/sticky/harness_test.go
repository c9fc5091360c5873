package sticky

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// opTimeout bounds one client operation.
const opTimeout = 30 * time.Second

// setup is the [pgbouncer] settings a test changes; zero values take the noted defaults.
type setup struct {
	poolSize    int    // default_pool_size; default 20
	directSize  int    // direct_pool_size; default 5 (pgmux's default)
	waitTimeout int    // query_wait_timeout in seconds; default 30
	listenMode  string // listen_mode; default multiplex
	extra       map[string]string
}

// mux is pgmux serving in this process, in transaction mode, in front of the shared
// test PostgreSQL: every database name reaches the same-named database ("*" fallback),
// trust authentication, the console for user admin.
type mux struct {
	pg   *pgtest.Server
	srv  *proxy.Server
	reg  *prometheus.Registry
	port int
}

func startMux(t testing.TB, s setup) *mux {
	t.Helper()
	pg := pgtest.Start(t)
	or := func(v, def int) string {
		if v == 0 {
			v = def
		}
		return strconv.Itoa(v)
	}
	cfg := config.Default()
	cfg.Path = "sticky-test"
	set := func(k, v string) { require.NoError(t, config.Set(cfg, k, v), k) }
	set("listen_addr", "127.0.0.1")
	set("unix_socket_dir", "")
	set("auth_type", "trust")
	set("admin_users", "admin")
	set("pool_mode", "transaction")
	set("max_client_conn", "2000")
	set("default_pool_size", or(s.poolSize, 20))
	set("direct_pool_size", or(s.directSize, 5))
	set("query_wait_timeout", or(s.waitTimeout, 30))
	if s.listenMode != "" {
		set("listen_mode", s.listenMode)
	}
	for k, v := range s.extra {
		set(k, v)
	}
	cfg.ListenPort = 0 // the kernel picks; Addrs reports it
	db, _, err := config.ParseDatabase("*", fmt.Sprintf("host=%s port=%d", pg.Host, pg.Port))
	require.NoError(t, err)
	cfg.Databases["*"] = db

	log, logPath := fileLogger(t)
	m := &mux{pg: pg, reg: prometheus.NewRegistry()}
	srv, err := proxy.New(proxy.Options{Config: cfg, Registry: m.reg, Logger: log, Version: "sticky-test"})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("pgmux shutdown: %v", err)
			_ = srv.Close()
		}
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after Shutdown")
		}
		_ = log.Sync()
		if t.Failed() {
			t.Logf("pgmux log (tail):\n%s", tail(logPath, 60))
		}
	})
	m.srv = srv
	m.port = srv.Addrs()[0].(*net.TCPAddr).Port
	return m
}

// fileLogger logs pgmux to a file: its goroutines may outlive a test, so they must not
// log through t.
func fileLogger(t testing.TB) (*zap.Logger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgmux.log")
	f, err := os.Create(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(f)), zapcore.DebugLevel)
	return zap.New(core), path
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// url is the transaction-mode URL of db through pgmux as the app user.
func (m *mux) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgtest.AppUser, pgtest.AppPassword),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// connect opens a pgx connection through pgmux with pgx's defaults (statement cache mode:
// named prepared statements, simple protocol for argument-less Exec), closed at cleanup.
func (m *mux) connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	return connectURL(t, m.url(db), nil)
}

func connectURL(t testing.TB, rawURL string, tune func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(rawURL)
	require.NoError(t, err)
	if tune != nil {
		tune(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// admin opens the console (simple protocol only).
func (m *mux) admin(t testing.TB) *pgx.Conn {
	t.Helper()
	u := url.URL{Scheme: "postgres", User: url.User("admin"),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)), Path: "/pgbouncer",
		RawQuery: "sslmode=disable"}
	return connectURL(t, u.String(), func(c *pgx.ConnConfig) {
		c.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	})
}

// direct opens a superuser connection to db on PostgreSQL itself, for looking behind pgmux.
func (m *mux) direct(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	return connectURL(t, m.pg.URL(pgtest.SuperUser, "", db), nil)
}

// env is the libpq environment for psql, pg_dump, pg_restore and pgbench to reach db
// through pgmux.
func (m *mux) env(db string, more ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	env = append(env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(m.port), "PGUSER="+pgtest.AppUser,
		"PGPASSWORD="+pgtest.AppPassword, "PGDATABASE="+db, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	return append(env, more...)
}

// run runs a program with a timeout and returns its combined output.
func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// clientRow is one SHOW CLIENTS row by column name.
type clientRow map[string]any

// showClients returns SHOW CLIENTS' column names and rows.
func showClients(t testing.TB, adm *pgx.Conn) ([]string, []clientRow) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rows, err := adm.Query(ctx, "SHOW CLIENTS")
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for _, fd := range rows.FieldDescriptions() {
		names = append(names, fd.Name)
	}
	var out []clientRow
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		r := make(clientRow, len(vals))
		for i, v := range vals {
			r[names[i]] = v
		}
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return names, out
}

// pinReasons maps each client of db to its pin_reason, by the client's local port as
// pgmux sees it (the client's remote port).
func pinReasons(t testing.TB, adm *pgx.Conn, db string) map[int]string {
	t.Helper()
	_, rows := showClients(t, adm)
	out := make(map[int]string)
	for _, r := range rows {
		if r["database"] != db {
			continue
		}
		reason, _ := r["pin_reason"].(string)
		out[int(toInt(r["port"]))] = reason
	}
	return out
}

// pinReasonOf is the pin_reason SHOW CLIENTS reports for conn.
func pinReasonOf(t testing.TB, adm *pgx.Conn, db string, conn *pgx.Conn) string {
	t.Helper()
	port := localPort(conn)
	reasons := pinReasons(t, adm, db)
	reason, ok := reasons[port]
	require.True(t, ok, "client port %d not in SHOW CLIENTS %v", port, reasons)
	return reason
}

func localPort(conn *pgx.Conn) int {
	return conn.PgConn().Conn().LocalAddr().(*net.TCPAddr).Port
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	}
	return -1
}

// pgErr returns err's PostgreSQL error, failing the test when there is none.
func pgErr(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want a PostgreSQL error, got %v", err)
	return pe
}

// ctxT is a context bounded by opTimeout, cancelled at cleanup.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// backends counts PostgreSQL's client backends connected to db as the app user.
func backends(t testing.TB, direct *pgx.Conn, db string) int {
	t.Helper()
	var n int
	require.NoError(t, direct.QueryRow(ctxT(t), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'`, db, pgtest.AppUser).Scan(&n))
	return n
}

// waitPinReason waits until SHOW CLIENTS reports want as conn's pin_reason. Unpinning
// follows the client's own answer: pgmux checks the server's state with a hidden query
// after the ReadyForQuery the client already has.
func waitPinReason(t testing.TB, adm *pgx.Conn, db string, conn *pgx.Conn, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := pinReasonOf(t, adm, db, conn)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			require.Equal(t, want, got, "pin_reason of the client at port %d", localPort(conn))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
