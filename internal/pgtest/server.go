package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// opTimeout bounds one helper operation (Exec, NewDatabase, Restart).
const opTimeout = 2 * time.Minute

// Server is a running PostgreSQL. Its fields do not change after start; its
// methods are safe for concurrent use.
type Server struct {
	Host      string // TCP address clients dial: 127.0.0.1 for a managed server
	Port      int
	SocketDir string // Unix socket directory; "" for an external server
	LogFile   string // server log; "" for an external server
	DataDir   string // "" for an external server

	superUser, superPassword, superDB string
	query                             string   // URL query kept in URL: sslmode etc.
	binDir                            string   // "" if no binaries were found
	cluster                           *cluster // nil for an external server

	seq      atomic.Int64 // NewDatabase name counter
	stopOnce sync.Once
}

func (s *Server) String() string {
	if s.cluster == nil {
		return fmt.Sprintf("external PostgreSQL at %s", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	}
	return fmt.Sprintf("PostgreSQL at %s (socket %s, pid %d, log %s)",
		net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), s.SocketDir, s.Pid(), s.LogFile)
}

// URL returns a postgres:// URL for user and database over TCP. An empty
// password is left out.
func (s *Server) URL(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: s.query,
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// ConnString returns the same connection as URL in libpq keyword=value form,
// as psql, pgbench and pg_dump accept it.
func (s *Server) ConnString(user, password, db string) string {
	kv := []string{"host", s.Host, "port", strconv.Itoa(s.Port), "user", user}
	if password != "" {
		kv = append(kv, "password", password)
	}
	kv = append(kv, "dbname", db)
	q, _ := url.ParseQuery(s.query) // built by this package, valid
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv = append(kv, k, q.Get(k))
	}
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+quoteConnValue(kv[i+1]))
	}
	return strings.Join(parts, " ")
}

// quoteConnValue quotes a libpq keyword value, escaping \ and ' with a backslash.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Connect opens a pgx connection over TCP, closed at cleanup.
func (s *Server) Connect(tb testing.TB, user, password, db string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(user, password, db))
	if err != nil {
		tb.Fatalf("pgtest: connect as %s to %s: %v", user, db, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// Exec runs sql (one or more statements, simple protocol) as the superuser in
// the superuser's database, failing the test on error.
func (s *Server) Exec(tb testing.TB, sql string) {
	tb.Helper()
	s.ExecDB(tb, s.superDB, sql)
}

// ExecDB is Exec in database db.
func (s *Server) ExecDB(tb testing.TB, db, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.exec(ctx, db, sql); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

func (s *Server) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL(s.superUser, s.superPassword, db))
	if err != nil {
		return fmt.Errorf("connect as %s to %s: %w", s.superUser, db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec in %s: %w\n%s", db, err, sql)
	}
	return nil
}

// NewDatabase creates an empty database for this test and drops it (with
// FORCE, ending open sessions) at cleanup. Every role may connect and create
// objects in its public schema. The name starts with prefix.
func (s *Server) NewDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	name := databaseName(prefix, os.Getpid(), s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.exec(ctx, s.superDB, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE template0"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := s.exec(ctx, s.superDB, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop test database: %v", err)
		}
	})
	if err := s.exec(ctx, name, "GRANT ALL ON SCHEMA public TO PUBLIC"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return name
}

// databaseName builds a valid, unique-per-process identifier of at most 63
// bytes: lower-case letters, digits and underscores.
func databaseName(prefix string, pid int, seq int64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	p := b.String()
	if p == "" || (p[0] >= '0' && p[0] <= '9') {
		p = "db_" + p
	}
	suffix := fmt.Sprintf("_%d_%d", pid, seq)
	if len(p)+len(suffix) > 63 {
		p = p[:63-len(suffix)]
	}
	return p + suffix
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// Restart restarts the server with pg_ctl restart -m mode ("smart", "fast" or
// "immediate") and waits until it accepts connections again. Every session,
// including other tests', is cut. An external server cannot be restarted: the
// test is skipped (failed in CI).
func (s *Server) Restart(tb testing.TB, mode string) {
	tb.Helper()
	switch mode {
	case "smart", "fast", "immediate":
	default:
		tb.Fatalf("pgtest: Restart mode %q: want smart, fast or immediate", mode)
	}
	if s.cluster == nil {
		skipOrFail(tb, "Restart needs a server started by pgtest, not "+EnvURL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.cluster.restart(ctx, mode); err != nil {
		tb.Fatalf("pgtest: restart -m %s: %v", mode, err)
	}
}

// Pid returns the postmaster's process id, or 0 for an external server or one
// that is not running.
func (s *Server) Pid() int {
	if s.cluster == nil {
		return 0
	}
	return s.cluster.pid()
}

// PgBin returns the path of a PostgreSQL program (psql, pgbench, pg_dump, ...),
// preferring the directory of the server binaries so versions match, then
// PATH. It returns "" when the program is not found; see RequireBin.
func (s *Server) PgBin(name string) string {
	if s.binDir != "" {
		if p := filepath.Join(s.binDir, name); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// RequireBin is PgBin that skips the test (fails it in CI) when the program
// is missing.
func (s *Server) RequireBin(tb testing.TB, name string) string {
	tb.Helper()
	p := s.PgBin(name)
	if p == "" {
		skipOrFail(tb, "PostgreSQL program "+name+" not found")
	}
	return p
}

// Stop stops the server and removes its files. It is idempotent. For an
// external server it does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cluster != nil {
			s.cluster.destroy()
		}
	})
}

// StopPostmaster stops a server started by pgtest with pg_ctl stop -m mode, leaving its
// data directory for StartPostmaster: clients see connections refused meanwhile.
func (s *Server) StopPostmaster(tb testing.TB, mode string) {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "StopPostmaster needs a server started by pgtest, not "+EnvURL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.cluster.stop(ctx, mode); err != nil {
		tb.Fatalf("pgtest: stop -m %s: %v", mode, err)
	}
}

// StartPostmaster starts a server stopped by StopPostmaster again, on the same port.
func (s *Server) StartPostmaster(tb testing.TB) {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "StartPostmaster needs a server started by pgtest, not "+EnvURL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.cluster.startAgain(ctx); err != nil {
		tb.Fatalf("pgtest: start: %v", err)
	}
}

// Reload asks the postmaster to re-read its configuration (pg_ctl reload).
func (s *Server) Reload(tb testing.TB) {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "Reload needs a server started by pgtest, not "+EnvURL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	if err := s.cluster.pgctl(ctx, "reload", "-D", s.cluster.dataDir, "-s"); err != nil {
		tb.Fatalf("pgtest: reload: %v", err)
	}
}

// WriteDataFile writes a file into the data directory owned by the server's OS user
// (certificates and keys for ssl = on), with mode 0600.
func (s *Server) WriteDataFile(tb testing.TB, name string, content []byte) string {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "WriteDataFile needs a server started by pgtest, not "+EnvURL)
		return ""
	}
	path := filepath.Join(s.DataDir, name)
	if err := s.cluster.writeFile(path, string(content)); err != nil {
		tb.Fatalf("pgtest: write %s: %v", path, err)
	}
	return path
}
