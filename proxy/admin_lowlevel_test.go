package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// lowLevelColumns are PgBouncer 1.25's columns of the views SHOW FDS, SOCKETS,
// ACTIVE_SOCKETS, DNS_HOSTS and DNS_ZONES, with their type OIDs, as its admin.c
// describes them (the SOCKETS views are SHOW CLIENTS' columns and seven of their own;
// id is int8 here as in pgmux's SHOW CLIENTS).
var lowLevelColumns = map[string][]struct {
	name string
	oid  uint32
}{
	"FDS": {{"fd", 23}, {"task", 25}, {"user", 25}, {"database", 25}, {"addr", 25}, {"port", 23},
		{"cancel", 20}, {"link", 23}, {"client_encoding", 25}, {"std_strings", 25}, {"datestyle", 25},
		{"timezone", 25}, {"password", 25}, {"scram_client_key", 17}, {"scram_server_key", 17}},
	"SOCKETS":        socketColumns,
	"ACTIVE_SOCKETS": socketColumns,
	"DNS_HOSTS":      {{"hostname", 25}, {"ttl", 20}, {"addrs", 25}},
	"DNS_ZONES":      {{"zonename", 25}, {"serial", 20}, {"count", 23}},
}

var socketColumns = []struct {
	name string
	oid  uint32
}{{"type", 25}, {"user", 25}, {"database", 25}, {"replication", 25}, {"state", 25}, {"addr", 25},
	{"port", 23}, {"local_addr", 25}, {"local_port", 23}, {"connect_time", 25}, {"request_time", 25},
	{"wait", 23}, {"wait_us", 23}, {"close_needed", 23}, {"ptr", 25}, {"link", 25}, {"remote_pid", 23},
	{"tls", 25}, {"application_name", 25}, {"prepared_statements", 23}, {"id", 20}, {"recv_pos", 23},
	{"pkt_pos", 23}, {"pkt_remain", 23}, {"send_pos", 23}, {"send_remain", 23}, {"pkt_avail", 23},
	{"send_avail", 23}}

// TestAdminLowLevelViews: SHOW FDS, SOCKETS, ACTIVE_SOCKETS, DNS_HOSTS and DNS_ZONES
// answer with PgBouncer's columns and pgmux's real sockets, where they were refused as
// unknown views (08P01).
func TestAdminLowLevelViews(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	adm := h.admin(t)
	for view, want := range lowLevelColumns {
		t.Run(view, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rows, err := adm.Query(ctx, "SHOW "+view)
			require.NoError(t, err)
			fds := rows.FieldDescriptions()
			rows.Close()
			require.NoError(t, rows.Err())
			require.Len(t, fds, len(want))
			for i, w := range want {
				require.Equal(t, w.name, fds[i].Name)
				require.Equal(t, w.oid, fds[i].DataTypeOID, "column %s", w.name)
			}
		})
	}

	_, rows := show(t, adm, "SHOW SOCKETS")
	cl := rowWhere(rows, "database", "app")
	require.Equal(t, "C", cl["type"])
	require.Equal(t, "cl_active", cl["state"])
	require.Nil(t, cl["recv_pos"], "pgmux has no sbuf positions")
	require.Equal(t, "cl_active", rowWhere(rows, "database", "pgbouncer")["state"])
	sv := rowWhere(rows, "type", "S")
	require.NotNil(t, sv, "the app's server: %v", rows)
	require.Contains(t, []any{"sv_idle", "sv_active", "sv_tested"}, sv["state"])
	require.Positive(t, num(t, sv, "remote_pid"))

	_, rows = show(t, adm, "SHOW FDS")
	pooler := rowWhere(rows, "task", "pooler")
	require.Equal(t, int64(h.port), num(t, pooler, "port"))
	require.Positive(t, num(t, pooler, "fd"))
	client := rowWhere(rows, "task", "client")
	require.Equal(t, "app", client["user"])
	require.Equal(t, "app", client["database"])
	require.Positive(t, num(t, client, "fd"))
	require.NotZero(t, num(t, client, "cancel"))
	require.Nil(t, client["password"], "no secret leaves pgmux")
	server := rowWhere(rows, "task", "server")
	require.Positive(t, num(t, server, "fd"))
	require.Equal(t, int64(h.pg.Port), num(t, server, "port"))
	require.NotEqual(t, num(t, client, "fd"), num(t, server, "fd"))
	for _, r := range rows {
		require.NotEqual(t, "pgbouncer", r["database"], "the console's own clients are not listed")
	}

	_, rows = show(t, adm, "SHOW DNS_HOSTS")
	require.Empty(t, rows, "pgmux keeps no DNS cache")
	_, rows = show(t, adm, "SHOW DNS_ZONES")
	require.Empty(t, rows)

	// SHOW FDS shows cancel keys: admin_users only, as in PgBouncer.
	stats := h.connect(t, "stats", "pgbouncer", true)
	_, err := stats.Exec(context.Background(), "SHOW FDS")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	_, rows = show(t, stats, "SHOW SOCKETS")
	require.NotEmpty(t, rows)
}

// TestAdminActiveSockets: SHOW ACTIVE_SOCKETS lists a client whose answer is stuck on its
// way to it (it does not read) and that client's server, and not an idle client (the
// console client asking is listed too, TestAdminActiveSocketsAsker).
func TestAdminActiveSockets(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	idle := h.connect(t, "app", "app", false)
	execSQL(t, idle, "SELECT 1")
	adm := h.admin(t)

	fe := rawLogin(t, h, map[string]string{"user": "app", "database": "app", "application_name": "stuck"})
	// About 200 MB of rows, which the client never reads: the relay stalls on its socket.
	fe.Send(&pgproto3.Query{String: "SELECT repeat('x', 2000) FROM generate_series(1, 100000)"})
	require.NoError(t, fe.Flush())

	// Both in one answer: the client is listed once the relay has bytes on their way to
	// it, and its server once the answer it relays has filled the client's socket; under
	// a loaded machine one answer can come between the two.
	var rows []map[string]any
	require.Eventually(t, func() bool {
		_, rows = show(t, adm, "SHOW ACTIVE_SOCKETS")
		stuck, sv := rowWhere(rows, "application_name", "stuck"), rowWhere(rows, "type", "S")
		return stuck != nil && sv != nil && sv["link"] == stuck["ptr"]
	}, 20*time.Second, 20*time.Millisecond, "the stuck client and its server are active")
	stuck := rowWhere(rows, "application_name", "stuck")
	require.Equal(t, "cl_active", stuck["state"])
	require.Len(t, rows, 3, "only the stuck client, its server and the console asking: %v", rows)
	require.NotNil(t, rowWhere(rows, "database", "pgbouncer"), "%v", rows)
}

// TestAdminActiveSocketsAsker: SHOW ACTIVE_SOCKETS lists the console client that runs it,
// as PgBouncer 1.18 does (its query is still in that client's buffer: "C admin pgbouncer
// cl_active ..."), and not an idle console client or an idle application client. pgmux
// listed no row at all.
func TestAdminActiveSocketsAsker(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	other := h.connect(t, "stats", "pgbouncer", true)
	show(t, other, "SHOW VERSION")
	adm := h.admin(t)
	// The other console client's SHOW VERSION counts as running until the console has
	// finished with it, a moment after its answer is written (the client may read it
	// first): looked at again until it has.
	var rows []map[string]any
	require.Eventually(t, func() bool {
		_, rows = show(t, adm, "SHOW ACTIVE_SOCKETS")
		return len(rows) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Len(t, rows, 1, "%v", rows)
	require.Equal(t, "C", rows[0]["type"])
	require.Equal(t, "admin", rows[0]["user"])
	require.Equal(t, "pgbouncer", rows[0]["database"])
	require.Equal(t, "cl_active", rows[0]["state"])
}

// TestAdminStatsConsoleRow: SHOW STATS, STATS_TOTALS and STATS_AVERAGES have a row for
// the console's database, as PgBouncer's lists its admin pool, counting as PgBouncer
// counts it: a console client's first query starts a transaction and a query that,
// with no server to answer, never end, so each client counts once in xact_count and
// query_count (its first SHOW counting itself), with no bytes and no times. PgBouncer
// 1.18 answers a client's first SHOW STATS_TOTALS "pgbouncer 1 1 0 0 0 0 0", and its
// third query, in the same session, the same; a client that sends no query counts
// nothing. pgmux counted every console query, with its bytes and answer time.
func TestAdminStatsConsoleRow(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW STATS")
	first := rowWhere(rows, "database", "pgbouncer")
	require.NotNil(t, first, "SHOW STATS has no pgbouncer row: %v", rows)
	require.Equal(t, int64(1), num(t, first, "total_query_count"), "the first query counts itself: %v", first)
	for i := 0; i < 3; i++ {
		show(t, adm, "SHOW VERSION")
	}
	idle := h.connect(t, "stats", "pgbouncer", true) // no query: not counted
	require.NoError(t, idle.Close(context.Background()))
	other := h.connect(t, "stats", "pgbouncer", true)
	show(t, other, "SHOW VERSION")
	_, rows = show(t, adm, "SHOW STATS")
	now := rowWhere(rows, "database", "pgbouncer")
	for _, col := range []string{"total_query_count", "total_xact_count"} {
		require.Equal(t, int64(2), num(t, now, col), "%s: one per client that sent a query: %v", col, now)
	}
	for _, col := range []string{"total_received", "total_sent", "total_xact_time", "total_query_time",
		"total_wait_time", "total_server_assignment_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time"} {
		require.Zero(t, num(t, now, col), "%s: %v", col, now)
	}
	_, rows = show(t, adm, "SHOW STATS_TOTALS")
	totals := rowWhere(rows, "database", "pgbouncer")
	require.Equal(t, int64(2), num(t, totals, "query_count"))
	require.Zero(t, num(t, totals, "bytes_received"))
	require.Zero(t, num(t, totals, "bytes_sent"))
	require.Zero(t, num(t, totals, "query_time"))
}

// TestAdminEmptyQuery: a Query without a command is a syntax error, 08P01, as
// PgBouncer's console answers it, not PostgreSQL's EmptyQueryResponse.
func TestAdminEmptyQuery(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	fe := rawConsole(t, h)
	for _, q := range []string{"", " ", ";", " ; ;"} {
		require.Equal(t, []string{"E 08P01", "Z"}, exchange(t, fe, &pgproto3.Query{String: q}), "query %q", q)
	}
	require.Equal(t, []string{"T", "D", "C SHOW", "Z"}, exchange(t, fe, &pgproto3.Query{String: "SHOW VERSION;"}))
}

// TestAdminSetRestartOnly: SET of a setting only a restart changes is answered as
// PgBouncer answers it, whatever the value: tag "SET key=value", here with a NOTICE that
// nothing changed; the value in force and SHOW CONFIG's stay, and pgmux still listens
// where it did. That holds for the ones pgmux implements (listen_port) and for the ones
// it reads and ignores (listen_backlog, so_reuseport, user...), which pgmux refused with
// 08P01 "setting is not supported by pgmux" while PgBouncer 1.18 answers them
// "SET listen_backlog=10". A name PgBouncer does not know stays refused, as its
// "SET failed" (an ignored setting PgBouncer may change is stored,
// TestAdminSetIgnoredChangeable).
func TestAdminSetRestartOnly(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW CONFIG")
	before := map[string]any{}
	for _, r := range rows {
		before[r["key"].(string)] = r["value"]
	}

	conn, notices := noticedConsole(t, h, "admin")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ q, tag, note string }{
		{"SET listen_port = 1", "SET listen_port=1", "stays"},
		{"SET listen_backlog=10", "SET listen_backlog=10", "does not use it"},
		{"set so_reuseport to 1", "SET so_reuseport=1", "does not use it"},
		{"SET user = 'nobody'", "SET user=nobody", "does not use it"},
		{"SET pkt_buf = 'lots'", "SET pkt_buf=lots", "does not use it"},
		{"SET unix_socket_mode = '0700'", "SET unix_socket_mode=0700", "stays"},
	} {
		*notices = nil
		tag, err := conn.Exec(ctx, c.q)
		require.NoError(t, err, c.q)
		require.Equal(t, c.tag, tag.String())
		require.Len(t, *notices, 1, c.q)
		require.Contains(t, (*notices)[0].Message, "cannot change at run time: SET ignored", c.q)
		require.Contains(t, (*notices)[0].Detail, c.note, c.q)
	}

	_, rows = show(t, adm, "SHOW CONFIG")
	for _, r := range rows {
		k := r["key"].(string)
		require.Equal(t, before[k], r["value"], "SHOW CONFIG claims a change of %s", k)
	}
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")

	for _, q := range []string{"SET no_such_setting = 1", "SET service_name = x"} {
		_, err := conn.Exec(ctx, q)
		require.Equal(t, "08P01", sqlState(err), "%s: %v", q, err)
	}
}

// TestAdminUnixSocketAddrs: a unix socket's addr is "unix" in SHOW CLIENTS, SERVERS and
// FDS, with the port its name ends in, as PgBouncer shows it; it was Go's "@" for an
// unnamed end, or the socket's path, with port 0.
func TestAdminUnixSocketAddrs(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgmux-sock-") // short: a socket path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pg := pgtest.Start(t)
	dbs := map[string]string{}
	if pg.SocketDir != "" { // an external server (PGMUX_TEST_PG_URL) has none
		dbs["sock"] = fmt.Sprintf("host=%s port=%d dbname=%s", pg.SocketDir, pg.Port, pgtest.AppDB)
	}
	h := startProxy(t, harnessOpts{extra: map[string]string{"unix_socket_dir": dir}, dbs: dbs})
	db := "app"
	if pg.SocketDir != "" {
		db = "sock"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	local, err := connectUnix(ctx, dir, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(context.Background()) })
	tx, err := local.Begin(ctx) // keeps its server linked for SHOW FDS
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err)

	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW CLIENTS")
	cl := rowWhere(rows, "database", db)
	require.NotNil(t, cl, "%v", rows)
	require.Equal(t, "unix", cl["addr"], "%v", cl)
	require.Equal(t, "unix", cl["local_addr"], "%v", cl)
	_, rows = show(t, adm, "SHOW FDS")
	require.NotNil(t, rowWhere(rows, "addr", "unix"), "the unix listener and client: %v", rows)
	if pg.SocketDir == "" {
		return
	}
	require.Equal(t, "unix", rowWhere(rows, "task", "server")["addr"], "%v", rows)
	require.Equal(t, int64(pg.Port), num(t, rowWhere(rows, "task", "server"), "port"))
	_, rows = show(t, adm, "SHOW SERVERS")
	sv := rowWhere(rows, "database", db)
	require.Equal(t, "unix", sv["addr"], "%v", sv)
	require.Equal(t, int64(pg.Port), num(t, sv, "port"))
	require.Equal(t, "unix", sv["local_addr"], "%v", sv)
}

// connectUnix logs in to db as app through the harness's unix socket in dir.
func connectUnix(ctx context.Context, dir, db string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s user=app dbname=%s", dir, db))
	if err != nil {
		return nil, err
	}
	cc.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, ".s.PGSQL.0")) // the harness's port is 0
	}
	return pgx.ConnectConfig(ctx, cc)
}

// TestUnixClientLogAddr: the log lines of a unix-socket client name its address as the
// console's views do, "unix" with the port ("unix:0": the harness listens on port 0), as
// PgBouncer logs unix(pid):port; they said "addr":"@", Go's name for the client's unnamed
// end. A TCP client's stays host:port.
func TestUnixClientLogAddr(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgmux-sock-") // short: a socket path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	core, logs := observer.New(zapcore.InfoLevel)
	h := startProxy(t, harnessOpts{log: zap.New(core), extra: map[string]string{"unix_socket_dir": dir, "log_connections": "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	local, err := connectUnix(ctx, dir, "app")
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(context.Background()) })
	_, err = connectUnix(ctx, dir, "nosuchdb")
	require.Error(t, err)
	h.connect(t, "app", "app", false)

	addrs := func(msg string) []string {
		var out []string
		for _, e := range logs.FilterMessage(msg).All() {
			out = append(out, fmt.Sprint(e.ContextMap()["addr"]))
		}
		return out
	}
	require.Eventually(t, func() bool { return len(addrs("client connected")) == 2 }, 10*time.Second, 5*time.Millisecond)
	got := addrs("client connected")
	slices.Sort(got) // the two logins' lines may come in either order
	require.Regexp(t, `^127\.0\.0\.1:[1-9][0-9]*$`, got[0])
	require.Equal(t, "unix:0", got[1])
	// The refusal is logged after its FATAL is written: the client may be on to its next
	// connection before the line is there.
	require.Eventually(t, func() bool { return len(addrs("client login refused")) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"unix:0"}, addrs("client login refused"))
}

// TestAdminFDSServerParams: SHOW FDS lists a server connection's client_encoding,
// std_strings, datestyle and timezone as the server reported them, as PgBouncer 1.18
// lists its server sockets' ("server postgres app ... UTF8 on ISO, MDY Etc/UTC"), at
// login and after a change (a SET TimeZone in a transaction). pgmux listed NULL for all
// four.
func TestAdminFDSServerParams(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ds, tz string
	require.NoError(t, app.QueryRow(ctx, "SELECT current_setting('DateStyle'), current_setting('TimeZone')").Scan(&ds, &tz))
	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW FDS")
	sv := rowWhere(rows, "task", "server")
	require.NotNil(t, sv, "%v", rows)
	require.Equal(t, "UTF8", sv["client_encoding"], "%v", sv)
	require.Equal(t, "on", sv["std_strings"])
	require.Equal(t, ds, sv["datestyle"])
	require.Equal(t, tz, sv["timezone"])

	tx, err := app.Begin(ctx) // keeps the server linked to the client
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, "SET TimeZone = 'Asia/Tokyo'")
	require.NoError(t, err)
	_, rows = show(t, adm, "SHOW FDS")
	require.Equal(t, "Asia/Tokyo", rowWhere(rows, "task", "server")["timezone"], "%v", rows)
	require.Equal(t, "Asia/Tokyo", rowWhere(rows, "task", "client")["timezone"], "%v", rows)
}
