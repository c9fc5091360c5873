package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
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

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// harness is a pgmux Server in front of the shared test PostgreSQL.
type harness struct {
	pg       *pgtest.Server
	srv      *proxy.Server
	reg      *prometheus.Registry
	port     int
	shutdown chan proxy.ShutdownMode
}

type harnessOpts struct {
	mode   string // pool_mode; default transaction
	extra  map[string]string
	dbs    map[string]string // extra [databases] entries: name -> connstr
	reload func(h *harness) error
	log    *zap.Logger // default: none
}

// testLoops is the number of client loops the harness runs: more than this machine's
// cores, so that clients and the servers they lease meet on different loops.
const testLoops = 3

// startProxy starts pgmux listening on 127.0.0.1:0 with the "app" database, trust
// authentication, admin_users=admin and stats_users=stats, and metrics on 127.0.0.1:0.
func startProxy(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	pg := pgtest.Start(t)
	cfg := config.Default()
	cfg.Path = "test"
	set := func(k, v string) { require.NoError(t, config.Set(cfg, k, v), k) }
	set("listen_addr", "127.0.0.1")
	set("unix_socket_dir", "")
	set("auth_type", "trust")
	set("admin_users", "admin")
	set("stats_users", "stats")
	set("metrics_addr", "127.0.0.1:0")
	set("query_wait_timeout", "30")
	mode := o.mode
	if mode == "" {
		mode = "transaction"
	}
	set("pool_mode", mode)
	if v := os.Getenv("PGMUX_CLIENT_LOOP"); v != "" {
		set("client_loop", v) // the whole suite with the client loop on (1, the default) or off (0)
	}
	for k, v := range o.extra {
		set(k, v)
	}
	cfg.ListenPort = 0
	addDB := func(name, connstr string) {
		db, _, err := config.ParseDatabase(name, connstr)
		require.NoError(t, err)
		cfg.Databases[name] = db
	}
	addDB("app", fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB))
	for n, cs := range o.dbs {
		addDB(n, cs)
	}
	h := &harness{pg: pg, reg: prometheus.NewRegistry(), shutdown: make(chan proxy.ShutdownMode, 4)}
	opts := proxy.Options{Config: cfg, Registry: h.reg, Version: "test",
		OnShutdown: func(m proxy.ShutdownMode) { h.shutdown <- m },
		Loops:      testLoops, Logger: o.log}
	if o.reload != nil {
		opts.Reload = func() error { return o.reload(h) }
	}
	srv, err := proxy.New(opts)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	h.srv = srv
	h.port = srv.Addrs()[0].(*net.TCPAddr).Port
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

func (h *harness) url(user, db string) string {
	return "postgres://" + user + "@127.0.0.1:" + strconv.Itoa(h.port) + "/" + db + "?sslmode=disable"
}

// connect opens a pgx connection through pgmux; simple selects the simple query protocol
// (the admin console serves nothing else).
func (h *harness) connect(t *testing.T, user, db string, simple bool) *pgx.Conn {
	t.Helper()
	conn, err := h.tryConnect(user, db, simple)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func (h *harness) tryConnect(user, db string, simple bool) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(h.url(user, db))
	if err != nil {
		return nil, err
	}
	if simple {
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cc)
}

// admin opens a console connection as the admin user.
func (h *harness) admin(t *testing.T) *pgx.Conn {
	return h.connect(t, "admin", "pgbouncer", true)
}

// show runs a console command and returns its column names and rows keyed by column.
func show(t *testing.T, conn *pgx.Conn, cmd string) ([]string, []map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, cmd)
	require.NoError(t, err, cmd)
	defer rows.Close()
	var names []string
	for _, fd := range rows.FieldDescriptions() {
		names = append(names, fd.Name)
	}
	var out []map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		m := make(map[string]any, len(vals))
		for i, v := range vals {
			m[names[i]] = v
		}
		out = append(out, m)
	}
	require.NoError(t, rows.Err(), cmd)
	return names, out
}

// rowWhere returns the first row whose column key equals value.
func rowWhere(rows []map[string]any, key string, value any) map[string]any {
	for _, r := range rows {
		if r[key] == value {
			return r
		}
	}
	return nil
}

// num reads an integer column.
func num(t *testing.T, row map[string]any, col string) int64 {
	t.Helper()
	require.NotNil(t, row, "no row for column %s", col)
	switch v := row[col].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	}
	t.Fatalf("column %s is %T (%v), want an integer", col, row[col], row[col])
	return 0
}

// exec runs sql through a normal pooled connection.
func execSQL(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}
