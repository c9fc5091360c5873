package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// TestHelpListsEveryFlag: --help prints every flag (the README's too) to stdout.
func TestHelpListsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out, &errOut))
	require.Empty(t, errOut.String())
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	n := 0
	newFlagSet(&flags{}, io.Discard).VisitAll(func(f *flag.Flag) {
		n++
		help := out.String()
		require.True(t, strings.Contains(help, "  -"+f.Name+" ") || strings.Contains(help, "  -"+f.Name+"\n"), "--help lacks -%s", f.Name)
		require.True(t, strings.Contains(string(readme), "-"+f.Name), "README.md lacks -%s", f.Name)
	})
	require.GreaterOrEqual(t, n, 13)
	require.Contains(t, out.String(), "-healthcheck URL")
}

// noEnv is an empty environment.
var noEnv environment

// envOf is an environment of m's variables.
func envOf(m map[string]string) environment {
	return func() []string {
		var out []string
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		return out
	}
}

// mutableEnv is an environment of m's variables that set changes, for a reload to read.
func mutableEnv(m map[string]string) (env environment, set func(k, v string)) {
	var mu sync.Mutex
	env = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return envOf(m)()
	}
	return env, func(k, v string) {
		mu.Lock()
		defer mu.Unlock()
		m[k] = v
	}
}

// TestVersion: --version prints to stdout, and names the VCS revision when Go stamped one.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--version"}, noEnv, &out, io.Discard))
	require.True(t, strings.HasPrefix(out.String(), "pgmux "), out.String())

	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.time", Value: "2026-12-02T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	ver, detail := describeBuild(info, "")
	require.Equal(t, "v1.2.3", ver)
	require.Equal(t, "revision abc123+dirty, 2026-12-02T10:00:00Z, go1.26.0", detail)
	ver, detail = describeBuild(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "v9")
	require.Equal(t, "v9", ver, "-ldflags -X main.version wins")
	require.Equal(t, "no VCS revision stamped, go1.26.0", detail)
}

// TestZeroConfigDefaults: with only an upstream URL, pgmux pools in transaction mode on
// loopback, and --admin-users / PGMUX_STATS_USERS name console users who log in with the
// upstream password.
func TestZeroConfigDefaults(t *testing.T) {
	env := map[string]string{"PGMUX_STATS_USERS": "watcher"}
	f, err := parseFlags([]string{"--upstream", "postgres://app:s3cret@db.internal:5432/app", "--admin-users", "ops"}, io.Discard, io.Discard)
	require.NoError(t, err)
	cfg, creds, err := loadConfig(f, envOf(env))
	require.NoError(t, err)
	require.Equal(t, config.PoolModeTransaction, cfg.PoolMode)
	require.Equal(t, []string{"127.0.0.1", "::1"}, cfg.ListenAddr)
	require.Equal(t, []string{"ops"}, cfg.AdminUsers)
	require.Equal(t, []string{"watcher"}, cfg.StatsUsers)
	for _, u := range []string{"app", "ops", "watcher"} {
		require.Equal(t, "s3cret", creds[u].Password, u)
	}

	// Flags and environment still win; an ini file keeps PgBouncer's defaults.
	f, err = parseFlags([]string{"--upstream", "postgres://app:s3cret@db/app", "--pool-mode", "session", "--listen", ":7000"}, io.Discard, io.Discard)
	require.NoError(t, err)
	cfg, _, err = loadConfig(f, noEnv)
	require.NoError(t, err)
	require.Equal(t, config.PoolModeSession, cfg.PoolMode)
	require.Equal(t, []string{"*"}, cfg.ListenAddr)
	require.Equal(t, 7000, cfg.ListenPort)
}

// TestZeroConfigConsole runs pgmux from an upstream URL against the test PostgreSQL: the
// app user and the --admin-users user both log in, the latter to the console, over
// loopback; nothing listens on other addresses.
func TestZeroConfigConsole(t *testing.T) {
	pg := pgtest.Start(t)
	port := freePort(t)
	args := []string{"--upstream", pg.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB),
		"--admin-users", "admin", "--metrics-addr", "", "--listen", "127.0.0.1:" + strconv.Itoa(port)}
	env := map[string]string{"PGMUX_LISTEN": "", "PGMUX_STATS_USERS": "watcher"}
	t.Setenv("PGPORT", "") // nothing from the environment leaks into the URL below
	logs := startRun(t, args, envOf(env))
	url := func(user, db string) string {
		return "postgres://" + user + ":" + pgtest.AppPassword + "@127.0.0.1:" + strconv.Itoa(port) + "/" + db + "?sslmode=disable"
	}

	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer qcancel()
	app, err := pgx.Connect(qctx, url(pgtest.AppUser, pgtest.AppDB))
	require.NoError(t, err)
	defer app.Close(qctx)
	var one int
	require.NoError(t, app.QueryRow(qctx, "SELECT 1").Scan(&one))

	for _, user := range []string{"admin", "watcher"} {
		cc, err := pgx.ParseConfig(url(user, "pgbouncer"))
		require.NoError(t, err)
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		adm, err := pgx.ConnectConfig(qctx, cc)
		require.NoError(t, err, user)
		rows, err := adm.Query(qctx, "SHOW POOLS")
		require.NoError(t, err)
		rows.Close()
		require.NoError(t, rows.Err())
		_, err = adm.Exec(qctx, "RELOAD")
		if user == "admin" {
			require.NoError(t, err, "admin may RELOAD")
		} else {
			require.Error(t, err, "a stats user may not")
		}
		adm.Close(qctx)
	}
	_, err = pgx.Connect(qctx, strings.Replace(url("admin", "pgbouncer"), pgtest.AppPassword, "wrong", 1))
	require.Error(t, err, "a wrong password is refused")
	require.Contains(t, logs.String(), `"pool_mode":"transaction"`)
}

// startRun runs pgmux (run) with args and env until the test ends, once it listens, and
// returns its log. At cleanup it stops pgmux, which must exit cleanly.
func startRun(t *testing.T, args []string, env environment) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() { done <- run(ctx, args, env, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("run did not return")
		}
		if t.Failed() {
			t.Logf("pgmux log:\n%s", logs.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "pgmux listening") }, 10*time.Second, 20*time.Millisecond)
	return logs
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for the logger's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestIniPathAndFlags: flags may follow the ini path; two paths, or an ini path and
// --upstream, are refused; PGMUX_UPSTREAM beside an ini path is ignored with a warning.
func TestIniPathAndFlags(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(ini, []byte("[databases]\napp = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_port = 6500\n"), 0o600))

	f, err := parseFlags([]string{ini, "--listen", ":7000"}, io.Discard, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ini, f.iniPath)
	require.Equal(t, ":7000", f.listen, "a flag after the path is read")
	cfg, _, err := loadConfig(f, noEnv)
	require.NoError(t, err)
	require.Equal(t, 7000, cfg.ListenPort)

	f, err = parseFlags([]string{"--", "-odd.ini"}, io.Discard, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "-odd.ini", f.iniPath, "after -- an argument is a path")

	_, err = parseFlags([]string{ini, "--listen", ":7000", "other.ini"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "expected at most one config file, got 2")

	f, err = parseFlags([]string{"--upstream", "postgres://app:s@db/app", ini}, io.Discard, io.Discard)
	require.NoError(t, err)
	_, _, err = loadConfig(f, noEnv)
	require.ErrorContains(t, err, "--upstream given: pgmux takes one")

	f, err = parseFlags([]string{ini}, io.Discard, io.Discard)
	require.NoError(t, err)
	cfg, _, err = loadConfig(f, envOf(map[string]string{"PGMUX_UPSTREAM": "postgres://app:s@elsewhere/app"}))
	require.NoError(t, err)
	require.Contains(t, cfg.Warnings, "PGMUX_UPSTREAM is ignored: the configuration comes from "+ini)
	require.Equal(t, 6500, cfg.ListenPort, "the ini file's settings, not the URL's defaults")
}

// TestZeroConfigServerLoginHint: in zero-config mode a failed server login's hint names
// the upstream URL as the source of the password, not auth_file.
func TestZeroConfigServerLoginHint(t *testing.T) {
	pg := pgtest.Start(t)
	port := freePort(t)
	t.Setenv("PGPORT", "")
	args := []string{"--upstream", pg.URL(pgtest.ScramUser, "not-the-password", pgtest.AppDB),
		"--metrics-addr", "", "--listen", "127.0.0.1:" + strconv.Itoa(port)}
	startRun(t, args, noEnv)
	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer qcancel()
	_, err := pgx.Connect(qctx, "postgres://"+pgtest.ScramUser+":not-the-password@127.0.0.1:"+strconv.Itoa(port)+"/"+pgtest.AppDB+"?sslmode=disable")
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "08P01", pe.Code)
	require.Contains(t, pe.Hint, "the password in the upstream URL (PGMUX_UPSTREAM")
	require.NotContains(t, pe.Hint, "auth_file")
}

// TestHelpListsEveryEnvVar: --help and the README name every PGMUX_ variable
// config.ApplyEnv reads.
func TestHelpListsEveryEnvVar(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out, io.Discard))
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, name := range append(config.EnvNames(), "PGMUX_UPSTREAM", "DATABASE_URL") {
		require.Contains(t, out.String(), name, "--help lacks %s", name)
		require.Contains(t, string(readme), "`"+name+"`", "README.md lacks %s", name)
	}
}
