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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// opTimeout bounds one client operation in these tests.
const opTimeout = 30 * time.Second

// bouncer describes a pgbouncer.ini and its userlist.txt.
type bouncer = muxtest.Ini

// mux is a pgmux running in this process.
type mux = muxtest.Mux

// startMux writes b to a temporary directory and serves it with pgmux in process on a
// kernel-chosen port; pgmux stops at cleanup.
func startMux(t testing.TB, pg *pgtest.Server, b bouncer) *mux {
	t.Helper()
	return muxtest.Start(t, pg, muxtest.Options{Ini: &b})
}

// connect opens a pgx connection, closed at cleanup. Statements run as unnamed prepared
// statements (see muxtest.Mux.Connect).
func connect(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, rawURL, pgx.QueryExecModeExec, opTimeout)
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
		// The toolchain that built this test binary builds pgmux too.
		//lint:ignore SA1019 go test builds and runs this binary on this machine, so its GOROOT exists here
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		pgmuxBin.path = filepath.Join(pgmuxBin.dir, "pgmux")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// Built as it ships (the Dockerfile's flags, cmd/pgmux TestBuildsMatchTheImage): static.
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", pgmuxBin.path, "github.com/pgmux/pgmux/cmd/pgmux")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
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
		ini := b.Write(t, dir, pg, port)
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
	b.Write(t, filepath.Dir(m.Ini), m.pg, m.Port)
	m.b = b
}

func (m *binMux) URL(user, password, db string) string {
	return muxtest.URL(m.Host, m.Port, user, password, db)
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
