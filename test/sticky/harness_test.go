package sticky

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
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
	*muxtest.Mux
	pg  *pgtest.Server
	reg *prometheus.Registry
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
	db, _, err := config.ParseDatabase("*", fmt.Sprintf("host=%s port=%d", pg.Host, pg.Port))
	require.NoError(t, err)
	cfg.Databases["*"] = db

	m := &mux{pg: pg, reg: prometheus.NewRegistry()}
	m.Mux = muxtest.Start(t, pg, muxtest.Options{Config: cfg, Registry: m.reg, Version: "sticky-test",
		Stop: muxtest.ShutdownLenient, TailLines: 60})
	return m
}

// url is the transaction-mode URL of db through pgmux as the app user.
func (m *mux) url(db string) string { return m.URL(pgtest.AppUser, pgtest.AppPassword, db) }

// connect opens a pgx connection through pgmux with pgx's defaults (statement cache mode:
// named prepared statements, simple protocol for argument-less Exec), closed at cleanup.
func (m *mux) connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, m.url(db), pgx.QueryExecModeCacheStatement, opTimeout)
}

// admin opens the console (simple protocol only).
func (m *mux) admin(t testing.TB) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, m.URL("admin", "", "pgbouncer"), pgx.QueryExecModeSimpleProtocol, opTimeout)
}

// direct opens a superuser connection to db on PostgreSQL itself, for looking behind pgmux.
func (m *mux) direct(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	return muxtest.Connect(t, m.pg.URL(pgtest.SuperUser, "", db), pgx.QueryExecModeCacheStatement, opTimeout)
}

// env is the libpq environment for psql, pg_dump, pg_restore and pgbench to reach db
// through pgmux.
func (m *mux) env(db string, more ...string) []string {
	return m.Env(pgtest.AppUser, pgtest.AppPassword, db, more...)
}

// clientRow is one console row by column name.
type clientRow map[string]any

// showRows returns a console command's column names and rows.
func showRows(t testing.TB, adm *pgx.Conn, cmd string) ([]string, []clientRow) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rows, err := adm.Query(ctx, cmd)
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

// showClients returns SHOW CLIENTS' column names and rows.
func showClients(t testing.TB, adm *pgx.Conn) ([]string, []clientRow) {
	t.Helper()
	return showRows(t, adm, "SHOW CLIENTS")
}

// showList is the items SHOW LISTS reports for list (-1: no such list).
func showList(t testing.TB, adm *pgx.Conn, list string) int64 {
	t.Helper()
	_, rows := showRows(t, adm, "SHOW LISTS")
	for _, r := range rows {
		if r["list"] == list {
			return toInt(r["items"])
		}
	}
	return -1
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
