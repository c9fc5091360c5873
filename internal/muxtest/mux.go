package muxtest

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// Stop is how a Mux stops at cleanup.
type Stop int

const (
	// Shutdown drains pgmux gracefully (10s); Shutdown and Serve must both return nil.
	Shutdown Stop = iota
	// ShutdownLenient drains pgmux gracefully (10s); a Shutdown error is reported and
	// followed by Close, Serve's result is ignored.
	ShutdownLenient
	// Close cuts every connection at once and ignores errors.
	Close
)

// Options says what Start serves and how. Exactly one of Ini, IniPath and Config is set.
type Options struct {
	Ini     *Ini           // written (with a placeholder listen_port) to a temporary directory and loaded
	IniPath string         // an existing pgbouncer.ini, loaded with its auth_file as cmd/pgmux does
	Config  *config.Config // served as is, without credentials; its ListenPort is set to 0

	// Reload gives pgmux a reload hook (RELOAD, SIGHUP) that loads the ini file and its
	// auth_file again. Not with Config.
	Reload bool

	Registry prometheus.Registerer // proxy.Options.Registry
	Version  string                // proxy.Options.Version

	// Logger replaces the default file logger (see FileLogger); Mux.LogPath is then empty
	// and no log tail is shown on failure.
	Logger *zap.Logger
	// TailLines is how many lines of the log a failed test shows; default 40.
	TailLines int

	Stop Stop // default Shutdown

	// ConnectTimeout, when set, adds connect_timeout (seconds) to Mux.URL.
	ConnectTimeout int
}

// Mux is pgmux serving in this process on 127.0.0.1.
type Mux struct {
	Srv     *proxy.Server
	Host    string
	Port    int
	Ini     string // the ini file served; empty with Options.Config
	LogPath string // pgmux's log file; empty with Options.Logger

	connectTimeout int
}

// Start serves pgmux in this process and stops it at cleanup. pg is the PostgreSQL that
// Options.Ini's default [databases] line points to; it is not used otherwise.
//
// The listen port comes from the kernel: config refuses listen_port = 0 (PgBouncer's range
// is 1-65535), so an ini names a placeholder port and the loaded Config's ListenPort is set
// to 0 before Listen; Addrs reports the real one.
func Start(t testing.TB, pg *pgtest.Server, o Options) *Mux {
	t.Helper()
	ini := o.IniPath
	if o.Ini != nil {
		ini = o.Ini.Write(t, t.TempDir(), pg, 6432)
	}
	load := func() (*config.Config, map[string]config.Credential, error) {
		cfg, err := config.Load(ini)
		if err != nil {
			return nil, nil, err
		}
		creds, err := config.LoadUserlist(filepath.Join(filepath.Dir(ini), cfg.AuthFile))
		if err != nil {
			return nil, nil, err
		}
		return cfg, creds, nil
	}
	// Three client loops whatever the cores, so that loops relaying to each other's
	// clients are exercised on a small machine too (client_loop; idle parking uses them).
	popts := proxy.Options{Registry: o.Registry, Version: o.Version, Loops: 3}
	if o.Config != nil {
		require.Empty(t, ini, "muxtest: Options.Config with an ini file")
		require.False(t, o.Reload, "muxtest: Options.Reload needs an ini file")
		popts.Config = o.Config
	} else {
		require.NotEmpty(t, ini, "muxtest: Options needs Ini, IniPath or Config")
		cfg, creds, err := load()
		require.NoError(t, err)
		popts.Config, popts.Credentials = cfg, creds
	}
	popts.Config.ListenPort = 0
	suiteSettings(popts.Config)

	log, logPath := o.Logger, ""
	if log == nil {
		log, logPath = FileLogger(t)
	}
	popts.Logger = log
	var srv *proxy.Server
	if o.Reload {
		popts.Reload = func() error {
			cfg, creds, err := load()
			if err != nil {
				return err
			}
			suiteSettings(cfg)
			return srv.Reload(cfg, creds)
		}
	}
	srv, err := proxy.New(popts)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		stop(t, srv, served, o.Stop)
		_ = log.Sync()
		if logPath != "" && t.Failed() {
			n := o.TailLines
			if n == 0 {
				n = 40
			}
			t.Logf("pgmux log (last %d lines):\n%s", n, Tail(logPath, n))
		}
	})
	addrs := srv.Addrs()
	require.Len(t, addrs, 1, "one TCP listener and no unix socket")
	tcp, ok := addrs[0].(*net.TCPAddr)
	require.True(t, ok, "listener address %v is not TCP", addrs[0])
	require.NotZero(t, tcp.Port)
	return &Mux{Srv: srv, Host: "127.0.0.1", Port: tcp.Port, Ini: ini, LogPath: logPath,
		connectTimeout: o.ConnectTimeout}
}

// stop stops srv the way s says and waits (10s at most) for Serve to return.
func stop(t testing.TB, srv *proxy.Server, served <-chan error, s Stop) {
	wait := func(check bool, after string) {
		select {
		case err := <-served:
			if check {
				require.NoError(t, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return 10s after %s", after)
		}
	}
	if s == Close {
		_ = srv.Close()
		wait(false, "Close")
		return
	}
	// Drain: clients that just left may not be unregistered yet, idle ones are cut.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	if s == Shutdown {
		require.NoError(t, err)
		wait(true, "Shutdown")
		return
	}
	if err != nil {
		t.Errorf("pgmux shutdown: %v", err)
		_ = srv.Close()
	}
	wait(false, "Shutdown")
}

// Addr is pgmux's host:port.
func (m *Mux) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// URL is a postgres:// URL through pgmux, without TLS (and with connect_timeout when
// Options.ConnectTimeout was set). An empty password is left out.
func (m *Mux) URL(user, password, db string) string {
	u := URL(m.Host, m.Port, user, password, db)
	if m.connectTimeout > 0 {
		u += "&connect_timeout=" + strconv.Itoa(m.connectTimeout)
	}
	return u
}

// URL is a postgres:// URL to db on host:port, without TLS. An empty password is left out.
func URL(host string, port int, user, password, db string) string {
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
func (m *Mux) Connect(t testing.TB, user, password, db string) *pgx.Conn {
	t.Helper()
	return Connect(t, m.URL(user, password, db), pgx.QueryExecModeExec, OpTimeout)
}

// Console opens the admin console (database pgbouncer) through pgmux as user, with the
// simple protocol it speaks; closed at cleanup.
func (m *Mux) Console(t testing.TB, user, password string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(m.URL(user, password, "pgbouncer"))
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { CloseConn(c) })
	return c
}

// Env is the libpq environment for psql, pgbench and friends to reach db through pgmux,
// followed by more.
func (m *Mux) Env(user, password, db string, more ...string) []string {
	return append(LibpqEnv(m.Host, m.Port, user, password, db), more...)
}

// suiteSettings applies what a whole-suite run asks for through the environment:
// PGMUX_CLIENT_LOOP=0 runs every pgmux of the suite with client_loop off (a goroutine
// per client, as on platforms without the loop), 1 with it on (the default).
func suiteSettings(cfg *config.Config) {
	switch os.Getenv("PGMUX_CLIENT_LOOP") {
	case "0":
		cfg.ClientLoop = false
	case "1":
		cfg.ClientLoop = true
	}
}
