package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// opTimeout bounds one client operation in these tests.
const opTimeout = 30 * time.Second

// bouncer describes a pgbouncer.ini and its userlist.txt. Zero values take the
// defaults noted on each field.
type bouncer struct {
	PoolMode      string            // default "transaction"
	PoolSize      int               // default_pool_size; default 20
	MaxClientConn int               // default 2000
	AuthType      string            // default "md5"
	Users         map[string]string // userlist.txt: user -> password as written; default app/apppass
	Databases     []string          // [databases] lines; default "* = host=... port=..." to pg
	Extra         []string          // more [pgbouncer] lines
}

// ini renders the configuration for a listener on port, with auth_file next to it.
func (b bouncer) ini(pg *pgtest.Server, port int) string {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	orInt := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	dbs := b.Databases
	if dbs == nil {
		dbs = []string{fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port)}
	}
	var s strings.Builder
	s.WriteString(";; written by pgmux's e2e tests\n[databases]\n")
	for _, d := range dbs {
		s.WriteString(d + "\n")
	}
	fmt.Fprintf(&s, `
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = %s
auth_file = userlist.txt
pool_mode = %s
default_pool_size = %d
max_client_conn = %d
server_idle_timeout = 60
`, port, or(b.AuthType, "md5"), or(b.PoolMode, "transaction"), orInt(b.PoolSize, 20), orInt(b.MaxClientConn, 2000))
	for _, e := range b.Extra {
		s.WriteString(e + "\n")
	}
	return s.String()
}

// userlist renders userlist.txt, sorted by user.
func (b bouncer) userlist() string {
	users := b.Users
	if users == nil {
		users = map[string]string{pgtest.AppUser: pgtest.AppPassword}
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var s strings.Builder
	q := func(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }
	for _, u := range names {
		s.WriteString(q(u) + " " + q(users[u]) + "\n")
	}
	return s.String()
}

// write puts pgbouncer.ini and userlist.txt into dir and returns the ini's path.
func (b bouncer) write(t testing.TB, dir string, pg *pgtest.Server, port int) string {
	t.Helper()
	ini := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(ini, []byte(b.ini(pg, port)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(b.userlist()), 0o644))
	return ini
}

// mux is a pgmux running in this process.
type mux struct {
	Srv  *proxy.Server
	Host string
	Port int
	Ini  string
	Log  string // pgmux's log file
}

// startMux writes b to a temporary directory and serves it with pgmux in process. The
// listen port comes from the kernel: config refuses listen_port = 0 (PgBouncer's range is
// 1-65535), so the ini names a placeholder port and the loaded Config's ListenPort is
// set to 0 before Listen; Addrs reports the real one. pgmux stops at cleanup.
func startMux(t testing.TB, pg *pgtest.Server, b bouncer) *mux {
	t.Helper()
	ini := b.write(t, t.TempDir(), pg, 6432)
	return startMuxFile(t, ini, true)
}

// startMuxFile serves an existing ini file the way cmd/pgmux loads it; with anyPort the
// file's listen_port is replaced by a kernel-chosen one.
func startMuxFile(t testing.TB, ini string, anyPort bool) *mux {
	t.Helper()
	cfg, err := config.Load(ini)
	require.NoError(t, err)
	creds, err := config.LoadUserlist(filepath.Join(filepath.Dir(ini), cfg.AuthFile))
	require.NoError(t, err)
	if anyPort {
		cfg.ListenPort = 0
	}
	log, logPath := fileLogger(t)
	srv, err := proxy.New(proxy.Options{Config: cfg, Credentials: creds, Logger: log})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		// Drain: clients that just left may not be unregistered yet, idle ones are cut.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		select {
		case err := <-served:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after Close")
		}
		_ = log.Sync()
		if t.Failed() {
			t.Logf("pgmux log:\n%s", tail(logPath, 40))
		}
	})
	addrs := srv.Addrs()
	require.Len(t, addrs, 1, "one TCP listener and no unix socket")
	tcp, ok := addrs[0].(*net.TCPAddr)
	require.True(t, ok, "listener address %v is not TCP", addrs[0])
	require.NotZero(t, tcp.Port)
	return &mux{Srv: srv, Host: "127.0.0.1", Port: tcp.Port, Ini: ini, Log: logPath}
}

// fileLogger returns a logger writing JSON to a file in a temporary directory: pgmux's
// goroutines may outlive a test, so they must not log through t.
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

// tail returns the last n lines of a file.
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

// URL is a postgres:// URL through pgmux, without TLS.
func (m *mux) URL(user, password, db string) string {
	return muxURL(m.Host, m.Port, user, password, db)
}

func muxURL(host string, port int, user, password, db string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, strconv.Itoa(port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// Connect opens a pgx connection through pgmux, closed at cleanup. Statements run as
// unnamed prepared statements (QueryExecModeExec): pgx's default cache mode names its
// statements, which transaction pooling only carries across servers once pgmux rewrites
// statement names.
func (m *mux) Connect(t testing.TB, user, password, db string) *pgx.Conn {
	t.Helper()
	return connect(t, m.URL(user, password, db))
}

func connect(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(rawURL)
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
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

// libpqEnv is the environment for psql and pgbench to reach db through a listener.
func libpqEnv(host string, port int, user, password, db string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGHOST="+host, "PGPORT="+strconv.Itoa(port), "PGUSER="+user,
		"PGPASSWORD="+password, "PGDATABASE="+db, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

func (m *mux) env(user, password, db string) []string {
	return libpqEnv(m.Host, m.Port, user, password, db)
}

// serverConns counts the server connections (backends) of user in db, asking PostgreSQL
// directly.
func serverConns(ctx context.Context, t testing.TB, admin *pgx.Conn, db, user string) int {
	t.Helper()
	var n int
	err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'`, db, user).Scan(&n)
	require.NoError(t, err)
	return n
}

// pgError returns err's PostgreSQL error, failing the test when there is none.
func pgError(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe, "want a PostgreSQL error, got %v", err)
	return pe
}

// runCmd runs a program with a timeout and returns its combined output.
func runCmd(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pgmuxBin holds the pgmux binary built once for this test process.
var pgmuxBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// pgmuxBinary builds cmd/pgmux once per test process and returns its path.
func pgmuxBinary(t testing.TB) string {
	t.Helper()
	pgmuxBin.once.Do(func() {
		pgmuxBin.dir, pgmuxBin.err = os.MkdirTemp("", "pgmux-e2e-bin-")
		if pgmuxBin.err != nil {
			return
		}
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		pgmuxBin.path = filepath.Join(pgmuxBin.dir, "pgmux")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", pgmuxBin.path, "github.com/pgmux/pgmux/cmd/pgmux").CombinedOutput()
		if err != nil {
			pgmuxBin.err = fmt.Errorf("go build cmd/pgmux: %w\n%s", err, out)
		}
	})
	require.NoError(t, pgmuxBin.err)
	return pgmuxBin.path
}

// removeBinary deletes the built binary; TestMain calls it after the tests.
func removeBinary() {
	if pgmuxBin.dir != "" {
		_ = os.RemoveAll(pgmuxBin.dir)
	}
}

// syncBuffer is a bytes.Buffer safe for a writing child process and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a child process the test started; it is killed (by PID) at cleanup if still
// running.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startProc starts a program and waits until its output contains ready, or it exits.
func startProc(t testing.TB, ready string, attr *syscall.SysProcAttr, env []string, name string, args ...string) (*proc, error) {
	t.Helper()
	return startProcIn(t, "", ready, attr, env, name, args...)
}

// startProcIn is startProc in working directory dir.
func startProcIn(t testing.TB, dir, ready string, attr *syscall.SysProcAttr, env []string, name string, args ...string) (*proc, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = attr
	p := &proc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.out.String(), ready) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before %q: %v\n%s", name, ready, p.err, p.out)
		case <-deadline:
			_ = cmd.Process.Kill()
			<-p.exited
			return nil, fmt.Errorf("%s did not print %q within 20s:\n%s", name, ready, p.out)
		case <-tick.C:
		}
	}
	return p, nil
}

// stop sends sig to the process and waits up to timeout for it to exit.
func (p *proc) stop(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("pid %d did not exit within %v of %v", p.cmd.Process.Pid, timeout, sig)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// startBinary runs the built pgmux on an ini file written from b on a free port,
// retrying with another port if one is taken in between. The ini can be rewritten
// later (see rewrite) for SIGHUP.
type binMux struct {
	*proc
	Host string
	Port int
	Ini  string
	b    bouncer
	pg   *pgtest.Server
}

func startBinary(t testing.TB, pg *pgtest.Server, b bouncer) *binMux {
	t.Helper()
	bin := pgmuxBinary(t)
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		port := freePort(t)
		ini := b.write(t, dir, pg, port)
		p, err := startProc(t, "pgmux listening", nil, os.Environ(), bin, ini)
		if err == nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("pgmux output:\n%s", p.out)
				}
			})
			return &binMux{proc: p, Host: "127.0.0.1", Port: port, Ini: ini, b: b, pg: pg}
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	require.NoError(t, lastErr)
	return nil
}

// rewrite replaces the ini file with b on the same port.
func (m *binMux) rewrite(t testing.TB, b bouncer) {
	t.Helper()
	b.write(t, filepath.Dir(m.Ini), m.pg, m.Port)
	m.b = b
}

func (m *binMux) URL(user, password, db string) string {
	return muxURL(m.Host, m.Port, user, password, db)
}

// peak is what a watcher saw of a pool's server connections: the most at once, and the
// distinct backends over the whole watch (more than the pool size means pgmux closed
// server connections and opened new ones).
type peak struct {
	max  int
	pids map[int]bool
	err  error
}

// watchServerConns samples the server connections of user in db every 20ms on admin, a
// direct connection it uses alone until ctx ends; then it sends what it saw.
func watchServerConns(ctx context.Context, admin *pgx.Conn, db, user string) <-chan peak {
	out := make(chan peak, 1)
	go func() {
		p := peak{pids: map[int]bool{}}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rows, err := admin.Query(qctx, `SELECT pid FROM pg_stat_activity
				WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'`, db, user)
			var pids []int
			if err == nil {
				pids, err = pgx.CollectRows(rows, pgx.RowTo[int])
			}
			cancel()
			if err != nil {
				p.err = err
				out <- p
				return
			}
			p.max = max(p.max, len(pids))
			for _, pid := range pids {
				p.pids[pid] = true
			}
			select {
			case <-ctx.Done():
				out <- p
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// urlQueryEscape escapes a URL query value with %20 for spaces: pgx does not read "+".
func urlQueryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
