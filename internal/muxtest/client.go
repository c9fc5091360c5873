package muxtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
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
)

// OpTimeout is the usual bound of one client operation.
const OpTimeout = 30 * time.Second

// Connect opens a pgx connection to rawURL with statements in mode, within timeout, and
// closes it at cleanup.
func Connect(t testing.TB, rawURL string, mode pgx.QueryExecMode, timeout time.Duration) *pgx.Conn {
	t.Helper()
	conn, err := TryConnect(rawURL, mode, timeout)
	require.NoError(t, err)
	t.Cleanup(func() { CloseConn(conn) })
	return conn
}

// TryConnect opens a pgx connection to rawURL with statements in mode, within timeout.
func TryConnect(rawURL string, mode pgx.QueryExecMode, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// CloseConn closes c, waiting 5s at most.
func CloseConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// PgError returns err's PostgreSQL error, failing the test when there is none.
func PgError(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want a PostgreSQL error, got %v", err)
	return pe
}

// LibpqEnv is this process's environment without PG* variables, plus those for psql,
// pgbench and friends to reach db on host:port without TLS.
func LibpqEnv(host string, port int, user, password, db string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGHOST="+host, "PGPORT="+strconv.Itoa(port), "PGUSER="+user,
		"PGPASSWORD="+password, "PGDATABASE="+db, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

// RunCmd runs a program with a timeout and returns its combined output.
func RunCmd(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// FileLogger returns a logger writing JSON at debug level to a file in a temporary
// directory, and the file's path: pgmux's goroutines may outlive a test, so they must not
// log through t.
func FileLogger(t testing.TB) (*zap.Logger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgmux.log")
	f, err := os.Create(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(f)), zapcore.DebugLevel)
	return zap.New(core), path
}

// Tail returns the last n lines of a file, or the error reading it.
func Tail(path string, n int) string {
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

// TestLogger is a console logger at info level writing through t.Log, made safe for
// pgmux goroutines that outlive the test: after cleanup, output is dropped instead of
// reaching a finished testing.T.
func TestLogger(t testing.TB) *zap.Logger {
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
