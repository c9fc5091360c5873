package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// reloadAlt is, for every [pgbouncer] key, a valid value other than the test's base
// configuration's. A key added to the settings table without one fails
// TestReloadFollowsSettingsTable: add it here.
func reloadAlt(dir string) map[string]string {
	return map[string]string{
		"listen_addr": "127.0.0.2", "listen_port": "16433", "unix_socket_dir": dir, "unix_socket_mode": "0700",
		"auth_type": "md5", "auth_file": filepath.Join(dir, "userlist.txt"), "auth_hba_file": filepath.Join(dir, "hba.conf"),
		"auth_user": "authuser", "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
		"admin_users": "admin, other", "stats_users": "stats2", "pool_mode": "session",
		"default_pool_size": "7", "min_pool_size": "1", "reserve_pool_size": "2", "reserve_pool_timeout": "3",
		"max_client_conn": "50", "max_db_connections": "9", "max_user_connections": "8",
		"server_reset_query": "RESET ALL", "server_reset_query_always": "1", "server_check_query": "SELECT 1",
		"server_check_delay": "10", "server_lifetime": "600", "server_idle_timeout": "60", "autodb_idle_timeout": "120",
		"server_connect_timeout": "5", "server_login_retry": "2", "query_timeout": "60", "query_wait_timeout": "20",
		"client_idle_timeout": "300", "idle_transaction_timeout": "30", "transaction_timeout": "90",
		"client_login_timeout": "20", "cancel_wait_timeout": "4", "suspend_timeout": "5", "ignore_startup_parameters": "extra_float_digits",
		"track_extra_parameters": "IntervalStyle, search_path", "max_packet_size": "1048576",
		"log_connections": "0", "log_disconnections": "0", "log_pooler_errors": "0", "verbose": "1",
		"logfile": filepath.Join(dir, "pgmux.log"), "pidfile": filepath.Join(dir, "pgmux.pid"),
		"tcp_keepalive": "0", "tcp_keepidle": "30", "tcp_keepintvl": "10", "tcp_keepcnt": "3",
		"client_tls_sslmode": "allow", "client_tls_key_file": filepath.Join(dir, "client.key"),
		"client_tls_cert_file": filepath.Join(dir, "client.crt"), "client_tls_ca_file": filepath.Join(dir, "ca.crt"),
		"client_tls_protocols": "tlsv1.3", "client_tls_ciphers": "normal",
		"server_tls_sslmode": "disable", "server_tls_key_file": filepath.Join(dir, "server.key"),
		"server_tls_cert_file": filepath.Join(dir, "server.crt"), "server_tls_ca_file": filepath.Join(dir, "sca.crt"),
		"server_tls_protocols": "tlsv1.2", "server_tls_ciphers": "fast",
		"max_prepared_statements": "50", "application_name_add_host": "1", "metrics_addr": "127.0.0.1:19127",
		"prepared_statement_mode": "unnamed", "cache_unnamed_statements": "1", "listen_mode": "pin", "client_loop": "0", "adaptive_procs": "0", "direct_pool_size": "3", "shutdown_timeout": "12", "failover_timeout": "7",
		"replica_reads": "auto", "replica_max_lag": "250", "replica_max_wait": "40", "stats_period": "15",
	}
}

// TestReloadFollowsSettingsTable walks the settings table: for each key, RELOAD with the
// key changed (and nothing else). A key the table marks reloadable takes the new value,
// which SHOW CONFIG shows, and logging keys reach the logging hook; a restart-only key is
// logged as needing a restart and keeps its value in force, which SHOW CONFIG shows too.
func TestReloadFollowsSettingsTable(t *testing.T) {
	dir := t.TempDir()
	core, logs := observer.New(zapcore.InfoLevel)
	base := config.Default()
	base.Path = "reload-test"
	set := func(c *config.Config, k, v string) { require.NoError(t, config.Set(c, k, v), k) }
	set(base, "listen_addr", "127.0.0.1")
	set(base, "unix_socket_dir", "")
	set(base, "auth_type", "trust")
	set(base, "admin_users", "admin")
	set(base, "pool_mode", "transaction")
	base.ListenPort = 0
	var applied []*config.Config
	srv, err := proxy.New(proxy.Options{Config: base.Clone(), Logger: zap.New(core), Version: "test",
		ApplyLogging: func(c *config.Config) error { applied = append(applied, c); return nil }})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Close() })
	port := srv.Addrs()[0].(*net.TCPAddr).Port
	cc, err := pgx.ParseConfig("postgres://admin@127.0.0.1:" + strconv.Itoa(port) + "/pgbouncer?sslmode=disable")
	require.NoError(t, err)
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := pgx.ConnectConfig(ctx, cc)
	require.NoError(t, err)
	defer adm.Close(context.Background())
	showConfig := func() map[string]string {
		_, rows := show(t, adm, "SHOW CONFIG")
		out := make(map[string]string, len(rows))
		for _, r := range rows {
			out[r["key"].(string)] = fmt.Sprint(r["value"])
		}
		return out
	}
	value := func(c *config.Config, key string) string {
		for _, d := range config.Describe(c) {
			if d.Name == key {
				return d.Value
			}
		}
		t.Fatalf("no %s in config.Describe", key)
		return ""
	}

	alt := reloadAlt(dir)
	// The server_tls_ca_file changed to must load: one that does not is an error.
	caCert, _ := selfSignedCert(t, t.TempDir())
	caPEM, err := os.ReadFile(caCert)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(alt["server_tls_ca_file"], caPEM, 0o644))
	inForce := srv.Config()
	for _, k := range config.Keys() {
		t.Run(k.Name, func(t *testing.T) {
			v, ok := alt[k.Name]
			require.True(t, ok, "no alternative value for %s in reloadAlt: add one", k.Name)
			next := inForce.Clone()
			set(next, k.Name, v)
			old, want := value(inForce, k.Name), value(next, k.Name)
			require.NotEqual(t, old, want, "reloadAlt[%s] must differ from the base value", k.Name)
			logs.TakeAll()
			applied = nil
			require.NoError(t, srv.Reload(next, nil))
			got := showConfig()[k.Name]
			if k.Reloadable {
				require.Equal(t, want, got, "SHOW CONFIG after RELOAD of reloadable %s", k.Name)
				require.Equal(t, want, value(srv.Config(), k.Name))
				require.Len(t, applied, 1, "the logging hook runs on every reload")
				require.Equal(t, want, value(applied[0], k.Name), "the logging hook sees the new configuration")
			} else {
				require.Equal(t, old, got, "SHOW CONFIG keeps restart-only %s at the value in force", k.Name)
				require.Equal(t, old, value(srv.Config(), k.Name))
				warned := logs.FilterMessage("reload: setting needs a restart to take effect").All()
				require.Len(t, warned, 1)
				require.Contains(t, warned[0].ContextMap()["change"], k.Name)
			}
			// Back to the base configuration for the next key.
			require.NoError(t, srv.Reload(inForce.Clone(), nil))
			require.Equal(t, old, showConfig()[k.Name])
		})
	}
	// track_extra_parameters is restart-only: a reload must not change what is tracked.
	next := inForce.Clone()
	set(next, "track_extra_parameters", "IntervalStyle, search_path")
	require.NoError(t, srv.Reload(next, nil))
	require.Equal(t, []string{"IntervalStyle"}, srv.Config().TrackExtraParameters)
}

// TestReloadRemovedDatabaseClosesItsClients: a RELOAD whose configuration no longer has a
// database closes that database's clients with a FATAL (PgBouncer's kill_database), where
// they stayed connected and every request failed against the closed pool; the other
// database's clients are untouched, and SHOW POOLS no longer lists the removed one.
func TestReloadRemovedDatabaseClosesItsClients(t *testing.T) {
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{
		dbs: map[string]string{"app2": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)},
		reload: func(h *harness) error {
			next := h.srv.Config().Clone()
			delete(next.Databases, "app2")
			return h.srv.Reload(next, nil)
		},
	})
	app := h.connect(t, "app", "app", false)
	gone := h.connect(t, "app", "app2", false)
	execSQL(t, app, "SELECT 1")
	execSQL(t, gone, "SELECT 1")

	adm := h.admin(t)
	_, err := adm.Exec(context.Background(), "RELOAD")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pgErr *pgconn.PgError
	for {
		_, err = gone.Exec(ctx, "SELECT 1")
		if err != nil || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // the FATAL is sent on a goroutine of its own
	}
	require.Error(t, err, "the removed database's client was not closed")
	if errors.As(err, &pgErr) {
		require.Equal(t, "57P01", pgErr.Code, "%v", err)
	}
	require.True(t, gone.IsClosed(), "the removed database's client is still connected: %v", err)
	execSQL(t, app, "SELECT 1")
	// The client hears its FATAL as soon as it is told (killWith), which may be a moment
	// before the removed pool is dropped: under the race detector with client_loop off the
	// first SHOW POOLS once came first.
	require.Eventually(t, func() bool {
		_, rows := show(t, adm, "SHOW POOLS")
		for _, r := range rows {
			if r["database"] == "app2" {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond, "SHOW POOLS still lists the removed database")
}

// TestConcurrentSetsAllTakeEffect: console SETs of different keys at the same time each
// take effect. Each SET derives the next configuration from the one in force; two
// overlapping SETs without one lock across that and the reload lost one of them.
func TestConcurrentSetsAllTakeEffect(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	keys := []string{"query_timeout", "idle_transaction_timeout", "client_idle_timeout", "server_idle_timeout",
		"server_lifetime", "query_wait_timeout", "transaction_timeout", "server_check_delay"}
	conns := make([]*pgx.Conn, len(keys))
	for i := range keys {
		conns[i] = h.admin(t)
	}
	for round := 1; round <= 10; round++ {
		errs := make(chan error, len(keys))
		for i, k := range keys {
			go func() {
				_, err := conns[i].Exec(context.Background(), fmt.Sprintf("SET %s = %d", k, 100*round+i))
				errs <- err
			}()
		}
		for range keys {
			require.NoError(t, <-errs)
		}
		_, rows := show(t, h.admin(t), "SHOW CONFIG")
		for i, k := range keys {
			require.Equal(t, strconv.Itoa(100*round+i), rowWhere(rows, "key", k)["value"], "round %d: SET %s was lost", round, k)
		}
	}
}
