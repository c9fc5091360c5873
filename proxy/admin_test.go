package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// referenceColumns reads PgBouncer 1.25's SHOW columns from testdata.
func referenceColumns(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("testdata/pgbouncer-1.25-show-columns.tsv")
	require.NoError(t, err)
	defer f.Close()
	out := make(map[string][]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cmd, cols, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			out[cmd] = strings.Split(cols, ",")
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestAdminShowColumns checks every SHOW against PgBouncer's column names and order
// (pgmux may only add trailing columns), and that numeric columns are typed numeric.
func TestAdminShowColumns(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	adm := h.admin(t)
	textual := map[string]bool{"database": true, "user": true, "name": true, "host": true, "force_user": true,
		"pool_mode": true, "load_balance_hosts": true, "type": true, "replication": true, "state": true,
		"addr": true, "local_addr": true, "connect_time": true, "request_time": true, "ptr": true, "link": true,
		"tls": true, "application_name": true, "version": true, "key": true, "value": true, "default": true,
		"changeable": true, "list": true, "pin_reason": true,
		"target_session_attrs": true, "host_roles": true, "role": true, "databases": true, "wal_lsn": true,
		"last_error": true, "replica_reads": true}
	for cmd, want := range referenceColumns(t) {
		t.Run(cmd, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rows, err := adm.Query(ctx, "SHOW "+cmd)
			require.NoError(t, err)
			fds := rows.FieldDescriptions()
			var got []string
			for _, fd := range fds {
				got = append(got, fd.Name)
			}
			for rows.Next() {
			}
			require.NoError(t, rows.Err())
			require.GreaterOrEqual(t, len(got), len(want))
			require.Equal(t, want, got[:len(want)])
			for _, fd := range fds {
				if textual[fd.Name] || (cmd == "TOTALS" && fd.Name == "value") {
					continue
				}
				require.Contains(t, []uint32{20, 23, 1700}, fd.DataTypeOID, "column %s of SHOW %s", fd.Name, cmd)
			}
		})
	}
}

func TestAdminAccess(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	_, err := h.tryConnect("app", "pgbouncer", true)
	require.Error(t, err)
	require.Equal(t, "28000", sqlState(err), "%v", err)
	require.Contains(t, err.Error(), "not allowed")

	// The "pgmux" alias reaches the same console.
	alias := h.connect(t, "admin", "pgmux", true)
	_, rows := show(t, alias, "show version;")
	require.Len(t, rows, 1)
	require.Contains(t, rows[0]["version"], "pgmux test")

	stats := h.connect(t, "stats", "pgbouncer", true)
	_, rows = show(t, stats, "SHOW POOLS")
	require.NotEmpty(t, rows)
	_, err = stats.Exec(context.Background(), "PAUSE")
	require.Equal(t, "08P01", sqlState(err), "%v", err)

	adm := h.admin(t)
	_, err = adm.Exec(context.Background(), "FROBNICATE")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	_, err = adm.Exec(context.Background(), "SHOW NOTHING")
	require.Equal(t, "08P01", sqlState(err), "%v", err)

	// The extended protocol is refused, 08P01, and the connection closed (PgBouncer's).
	ext := h.connect(t, "admin", "pgbouncer", false)
	rows2, err := ext.Query(context.Background(), "SHOW POOLS") // extended protocol
	if err == nil {
		rows2.Close()
		err = rows2.Err()
	}
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	_, err = ext.Exec(context.Background(), "SHOW VERSION", pgx.QueryExecModeSimpleProtocol)
	require.Error(t, err, "the console connection stays open after an extended-protocol message")
}

func TestAdminStats(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	const n = 25
	for i := 0; i < n; i++ {
		var v int
		require.NoError(t, app.QueryRow(context.Background(), "SELECT $1::int", i).Scan(&v))
	}
	execSQL(t, app, "BEGIN; SELECT 1; COMMIT")
	adm := h.admin(t)

	_, rows := show(t, adm, "SHOW STATS")
	st := rowWhere(rows, "database", "app")
	require.GreaterOrEqual(t, num(t, st, "total_query_count"), int64(n))
	require.GreaterOrEqual(t, num(t, st, "total_xact_count"), int64(n))
	require.GreaterOrEqual(t, num(t, st, "total_server_assignment_count"), int64(n))
	require.Positive(t, num(t, st, "total_received"))
	require.Positive(t, num(t, st, "total_sent"))
	require.Positive(t, num(t, st, "total_query_time"))
	require.Positive(t, num(t, st, "total_xact_time"))
	require.GreaterOrEqual(t, num(t, st, "total_client_parse_count"), int64(1))
	require.GreaterOrEqual(t, num(t, st, "total_bind_count"), int64(n))
	require.Positive(t, num(t, st, "avg_query_time"))

	_, rows = show(t, adm, "SHOW STATS_TOTALS")
	tot := rowWhere(rows, "database", "app")
	require.GreaterOrEqual(t, num(t, tot, "query_count"), int64(n))
	require.Positive(t, num(t, tot, "bytes_sent"))

	_, rows = show(t, adm, "SHOW POOLS")
	p := rowWhere(rows, "database", "app")
	require.Equal(t, "app", p["user"])
	require.Equal(t, int64(1), num(t, p, "cl_active"))
	// The client may send its next query before its last server is back in the pool
	// (ReadyForQuery is relayed first), so a second server can open.
	require.GreaterOrEqual(t, num(t, p, "sv_idle")+num(t, p, "sv_active")+num(t, p, "sv_tested"), int64(1))
	require.Equal(t, "transaction", p["pool_mode"])

	_, rows = show(t, adm, "SHOW DATABASES")
	d := rowWhere(rows, "name", "app")
	require.Equal(t, int64(h.pg.Port), num(t, d, "port"))
	require.Equal(t, int64(20), num(t, d, "pool_size"))
	require.Equal(t, int64(1), num(t, d, "current_client_connections"))
	require.Equal(t, int64(0), num(t, d, "paused"))

	_, rows = show(t, adm, "SHOW CONFIG")
	c := rowWhere(rows, "key", "pool_mode")
	require.Equal(t, "transaction", c["value"])
	require.Equal(t, "session", c["default"])
	require.Equal(t, "yes", c["changeable"])
	require.Equal(t, "no", rowWhere(rows, "key", "listen_port")["changeable"])

	// The client had its last ReadyForQuery before its server went back to the pool (the
	// answer is relayed first): under load the server can still be on its way.
	require.Eventually(t, func() bool {
		_, rows := show(t, adm, "SHOW LISTS")
		return num(t, rowWhere(rows, "list", "free_servers"), "items") >= 1
	}, 5*time.Second, 5*time.Millisecond, "the server is back in the pool")
	_, rows = show(t, adm, "SHOW LISTS")
	require.Equal(t, int64(2), num(t, rowWhere(rows, "list", "used_clients"), "items"))

	_, rows = show(t, adm, "SHOW CLIENTS")
	require.NotNil(t, rowWhere(rows, "database", "app"))
	require.NotNil(t, rowWhere(rows, "database", "pgbouncer"))
	_, rows = show(t, adm, "SHOW SERVERS")
	srv := rowWhere(rows, "database", "app")
	require.Positive(t, num(t, srv, "remote_pid"))
	// pgmux's own: the pool's statement cache (pgx prepared "SELECT $1::int" once per
	// server and bound it n times) and each server's.
	names, rows := show(t, adm, "SHOW PREPARED")
	require.Equal(t, []string{"database", "user", "prepared_statements", "cache_hits", "cache_misses",
		"cache_evictions", "retries", "unnamed_hits", "unnamed_misses"}, names)
	pp := rowWhere(rows, "database", "app")
	require.Equal(t, "app", pp["user"])
	require.Positive(t, num(t, pp, "prepared_statements"))
	require.GreaterOrEqual(t, num(t, pp, "cache_hits"), int64(n-1))
	require.Positive(t, num(t, pp, "cache_misses"))
	require.Equal(t, int64(0), num(t, pp, "cache_evictions"))
	names, rows = show(t, adm, "SHOW PREPARED_SERVERS")
	require.Equal(t, []string{"id", "database", "user", "prepared_statements", "hits", "misses", "evictions", "retries", "unnamed_hits", "unnamed_misses"}, names)
	ps := rowWhere(rows, "database", "app")
	require.Positive(t, num(t, ps, "id"))
	require.Equal(t, "app", ps["user"])
	require.Positive(t, num(t, ps, "prepared_statements"))
	_, rows = show(t, adm, "SHOW USERS")
	require.Equal(t, int64(1), num(t, rowWhere(rows, "name", "app"), "current_client_connections"))
	_, rows = show(t, adm, "SHOW STATE")
	require.Equal(t, "no", rowWhere(rows, "key", "paused")["value"])
	_, rows = show(t, adm, "SHOW MEM")
	require.NotNil(t, rowWhere(rows, "name", "client"))
	// SHOW HELP answers with a notice and no rows.
	_, err := adm.Exec(context.Background(), "SHOW HELP")
	require.NoError(t, err)
}

// TestAdminPsql drives the console with psql, as operators do.
func TestAdminPsql(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	psql := h.pg.RequireBin(t, "psql")
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	run := func(sql string) (string, error) {
		cmd := exec.Command(psql, "-X", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", "admin",
			"-A", "-F|", "-c", sql, "pgbouncer")
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
		out, err := cmd.Output()
		return string(out), err
	}
	out, err := run("SHOW POOLS;")
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.GreaterOrEqual(t, len(lines), 3, out)
	header := strings.Split(lines[0], "|")
	require.Equal(t, referenceColumns(t)["POOLS"], header)
	found := false
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Split(l, "|")
		require.Len(t, f, len(header), l)
		if f[0] == "app" && f[1] == "app" {
			found = true
			require.Equal(t, "1", f[2], "cl_active")
		}
	}
	require.True(t, found, out)
	out, err = run("show stats_totals")
	require.NoError(t, err, out)
	require.Contains(t, out, "database|server_assignment_count|xact_count")

	cmd := exec.Command(psql, "-X", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", "app", "-c", "SHOW POOLS", "pgbouncer")
	msg, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(msg), "not allowed")
}

// TestAdminPauseResume: PAUSE waits for servers, holds new queries (the client sees a
// delay, not an error) and RESUME lets them run.
func TestAdminPauseResume(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	adm := h.admin(t)

	// A transaction in progress delays PAUSE until it ends.
	tx, err := app.Begin(context.Background())
	require.NoError(t, err)
	paused := make(chan error, 1)
	go func() {
		_, err := adm.Exec(context.Background(), "PAUSE app")
		paused <- err
	}()
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a server was busy: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, tx.Commit(context.Background()))
	require.NoError(t, <-paused)

	_, rows := show(t, adm, "SHOW DATABASES")
	require.Equal(t, int64(1), num(t, rowWhere(rows, "name", "app"), "paused"))

	done := make(chan error, 1)
	go func() {
		var v int
		done <- app.QueryRow(context.Background(), "SELECT 42").Scan(&v)
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_, rows = show(t, adm, "SHOW POOLS")
	require.Equal(t, int64(1), num(t, rowWhere(rows, "database", "app"), "cl_waiting"))
	_, err = adm.Exec(context.Background(), "RESUME app")
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("query still held after RESUME")
	}
	_, err = adm.Exec(context.Background(), "RESUME")
	require.Equal(t, "08P01", sqlState(err), "%v", err)

	// Global PAUSE / RESUME and SUSPEND.
	_, err = adm.Exec(context.Background(), "PAUSE")
	require.NoError(t, err)
	_, rows = show(t, adm, "SHOW STATE")
	require.Equal(t, "yes", rowWhere(rows, "key", "paused")["value"])
	_, err = adm.Exec(context.Background(), "RESUME")
	require.NoError(t, err)
	execSQL(t, app, "SELECT 1")
}

func TestAdminReloadAndSet(t *testing.T) {
	reloads := 0
	h := startProxy(t, harnessOpts{reload: func(h *harness) error {
		reloads++
		next := h.srv.Config().Clone()
		if err := config.Set(next, "default_pool_size", "11"); err != nil {
			return err
		}
		return h.srv.Reload(next, nil)
	}})
	adm := h.admin(t)
	_, err := adm.Exec(context.Background(), "RELOAD")
	require.NoError(t, err)
	require.Equal(t, 1, reloads)
	_, rows := show(t, adm, "SHOW CONFIG")
	require.Equal(t, "11", rowWhere(rows, "key", "default_pool_size")["value"])

	// The tag names the setting and its value, unquoted, as PgBouncer's does.
	tag, err := adm.Exec(context.Background(), "SET default_pool_size = 7")
	require.NoError(t, err)
	require.Equal(t, "SET default_pool_size=7", tag.String())
	tag, err = adm.Exec(context.Background(), "set server_reset_query = 'DISCARD ALL; SELECT 1'")
	require.NoError(t, err)
	require.Equal(t, "SET server_reset_query=DISCARD ALL; SELECT 1", tag.String())
	_, rows = show(t, adm, "SHOW CONFIG")
	require.Equal(t, "7", rowWhere(rows, "key", "default_pool_size")["value"])
	require.Equal(t, "DISCARD ALL; SELECT 1", rowWhere(rows, "key", "server_reset_query")["value"])
	require.Equal(t, 7, h.srv.Config().DefaultPoolSize)

	// The value is one token: unquoted words are a syntax error, not "DISCARDALL".
	_, err = adm.Exec(context.Background(), "SET server_reset_query = DISCARD ALL")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	_, rows = show(t, adm, "SHOW CONFIG")
	require.Equal(t, "DISCARD ALL; SELECT 1", rowWhere(rows, "key", "server_reset_query")["value"])

	// A restart-only setting: answered SET, as PgBouncer answers it, and changed nowhere
	// (TestAdminSetRestartOnly).
	_, err = adm.Exec(context.Background(), "SET listen_port = 7000")
	require.NoError(t, err)
	require.NotEqual(t, 7000, h.srv.Config().ListenPort)
	_, err = adm.Exec(context.Background(), "SET default_pool_size = lots")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	_, err = adm.Exec(context.Background(), "SET no_such_key = 1")
	require.Error(t, err)
}

func TestAdminDisableKillReconnect(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")

	_, err := adm.Exec(context.Background(), "DISABLE app")
	require.NoError(t, err)
	_, err = h.tryConnect("app", "app", false)
	require.Equal(t, "55000", sqlState(err), "%v", err)
	_, rows := show(t, adm, "SHOW DATABASES")
	require.Equal(t, int64(1), num(t, rowWhere(rows, "name", "app"), "disabled"))
	_, err = adm.Exec(context.Background(), "ENABLE app")
	require.NoError(t, err)
	h.connect(t, "app", "app", false)

	_, err = adm.Exec(context.Background(), "DISABLE nosuchdb")
	require.Equal(t, "08P01", sqlState(err), "%v", err)

	// RECONNECT closes the idle server; WAIT_CLOSE returns once it is gone.
	_, rows = show(t, adm, "SHOW SERVERS")
	old := num(t, rowWhere(rows, "database", "app"), "id")
	_, err = adm.Exec(context.Background(), "RECONNECT app")
	require.NoError(t, err)
	_, err = adm.Exec(context.Background(), "WAIT_CLOSE app")
	require.NoError(t, err)
	execSQL(t, app, "SELECT 1")
	_, rows = show(t, adm, "SHOW SERVERS")
	require.NotEqual(t, old, num(t, rowWhere(rows, "database", "app"), "id"))

	// KILL_CLIENT drops one client by the id SHOW CLIENTS shows.
	_, rows = show(t, adm, "SHOW CLIENTS")
	var id int64
	for _, r := range rows {
		if r["database"] == "app" {
			id = num(t, r, "id")
			break
		}
	}
	_, err = adm.Exec(context.Background(), fmt.Sprintf("KILL_CLIENT %d", id))
	require.NoError(t, err)

	// KILL drops everyone on the database; new clients wait for RESUME.
	_, err = adm.Exec(context.Background(), "KILL app")
	require.NoError(t, err)
	connected := make(chan error, 1)
	go func() {
		c, err := h.tryConnect("app", "app", false)
		if err == nil {
			_ = c.Close(context.Background())
		}
		connected <- err
	}()
	select {
	case err := <-connected:
		t.Fatalf("login to a killed database went through: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	_, err = adm.Exec(context.Background(), "RESUME app")
	require.NoError(t, err)
	require.NoError(t, <-connected)
}

func TestAdminShutdown(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	_, err := adm.Exec(context.Background(), "SHUTDOWN WAIT_FOR_SERVERS")
	require.NoError(t, err)
	require.Equal(t, proxy.ShutdownWaitForServers, <-h.shutdown)
	_, err = adm.Exec(context.Background(), "SHUTDOWN WAIT_FOR_CLIENTS")
	require.NoError(t, err)
	require.Equal(t, proxy.ShutdownWaitForClients, <-h.shutdown)
	_, err = adm.Exec(context.Background(), "SHUTDOWN")
	require.NoError(t, err)
	require.Equal(t, proxy.ShutdownImmediate, <-h.shutdown)
}

// TestConsoleReachableAtMaxClientConn: at max_client_conn an application's client is
// refused (53300) but the console still logs in, as in PgBouncer: SHOW and KILL are what
// an operator needs then.
func TestConsoleReachableAtMaxClientConn(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"max_client_conn": "1"}})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	_, err := h.tryConnect("app", "app", false)
	require.Equal(t, "53300", sqlState(err), "%v", err)
	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW CLIENTS")
	require.NotNil(t, rowWhere(rows, "database", "app"))
}

// TestAdminServersCloseNeeded: SHOW SERVERS' close_needed is 1 for a server that will be
// closed when it is released, as PgBouncer shows it: one linked to a client in a
// transaction when RECONNECT, or a reload that moves the database to another host, marks
// the pool's servers. Its replacement shows 0.
func TestAdminServersCloseNeeded(t *testing.T) {
	var moveTo string
	h := startProxy(t, harnessOpts{reload: func(h *harness) error {
		next := h.srv.Config().Clone()
		db, _, err := config.ParseDatabase("app", fmt.Sprintf("host=%s port=%d dbname=%s", moveTo, h.pg.Port, pgtest.AppDB))
		if err != nil {
			return err
		}
		next.Databases["app"] = db
		return h.srv.Reload(next, nil)
	}})
	adm := h.admin(t)
	app := h.connect(t, "app", "app", false)
	ctx := context.Background()
	linked := func() map[string]any {
		t.Helper()
		_, rows := show(t, adm, "SHOW SERVERS")
		for _, r := range rows {
			if r["database"] == "app" && r["link"] != "" {
				return r
			}
		}
		t.Fatalf("no server of app linked to a client: %v", rows)
		return nil
	}
	for _, mark := range []struct{ name, cmd, host string }{
		{"RECONNECT", "RECONNECT app", ""},
		{"reload to another host", "RELOAD", "localhost"},
		{"reload back", "RELOAD", h.pg.Host},
	} {
		t.Run(mark.name, func(t *testing.T) {
			tx, err := app.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, "SELECT 1")
			require.NoError(t, err)
			before := linked()
			require.Equal(t, int64(0), num(t, before, "close_needed"))

			moveTo = mark.host
			_, err = adm.Exec(ctx, mark.cmd)
			require.NoError(t, err)
			after := linked()
			require.Equal(t, num(t, before, "id"), num(t, after, "id"), "the same server, still linked")
			require.Equal(t, int64(1), num(t, after, "close_needed"))

			require.NoError(t, tx.Commit(ctx)) // released: closed, not reused
			_, err = adm.Exec(ctx, "WAIT_CLOSE app")
			require.NoError(t, err)
			tx, err = app.Begin(ctx)
			require.NoError(t, err)
			defer func() { require.NoError(t, tx.Rollback(ctx)) }()
			_, err = tx.Exec(ctx, "SELECT 1")
			require.NoError(t, err)
			fresh := linked()
			require.NotEqual(t, num(t, before, "id"), num(t, fresh, "id"))
			require.Equal(t, int64(0), num(t, fresh, "close_needed"))
		})
	}
}

// TestAdminTotalsAverageOverWindow: SHOW TOTALS' avg_ times are those of the stats window,
// as SHOW STATS' are, not of the whole run (PgBouncer's show_stat_totals averages the
// summed counters over the same period). Slow queries before the window must not weigh on
// the averages of the fast ones in it.
func TestAdminTotalsAverageOverWindow(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	for range 3 {
		execSQL(t, app, "SELECT pg_sleep(0.2)")
	}
	proxy.StartStatsWindow(h.srv)
	for range 5 {
		execSQL(t, app, "SELECT 1")
	}
	adm := h.admin(t)
	_, rows := show(t, adm, "SHOW STATS")
	stats := rowWhere(rows, "database", "app")
	_, rows = show(t, adm, "SHOW TOTALS")
	total := func(name string) int64 { return num(t, rowWhere(rows, "name", name), "value") }

	require.GreaterOrEqual(t, total("total_query_time"), int64(600_000), "the slow queries count in the totals")
	for _, col := range []string{"avg_xact_time", "avg_query_time", "avg_wait_time"} {
		require.Equal(t, num(t, stats, col), total(col), "%s of SHOW TOTALS and SHOW STATS (one database)", col)
	}
	require.Less(t, total("avg_query_time"), int64(100_000), "only the window's fast queries are averaged")
}

// TestAdminResumeUnknownDB: RESUME of a database that does not exist says so, as
// DISABLE, KILL and the others do, as PgBouncer's "no such database", not "not paused".
func TestAdminResumeUnknownDB(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	_, err := adm.Exec(context.Background(), "RESUME nosuch")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	require.Contains(t, err.Error(), "no such database: nosuch")
	_, err = adm.Exec(context.Background(), "RESUME app")
	require.Equal(t, "08P01", sqlState(err), "%v", err)
	require.Contains(t, err.Error(), "not paused")
}

// TestAdminReloadFailure: a RELOAD that fails (here the hook's error; in cmd/pgmux an
// unreadable or invalid configuration file) is SQLSTATE F0000, config_file_error, as
// PgBouncer answers it, and leaves the configuration as it was.
func TestAdminReloadFailure(t *testing.T) {
	h := startProxy(t, harnessOpts{reload: func(h *harness) error {
		return errors.New("pgbouncer.ini line 3: syntax error")
	}})
	adm := h.admin(t)
	before := h.srv.Config()
	_, err := adm.Exec(context.Background(), "RELOAD")
	require.Equal(t, "F0000", sqlState(err), "%v", err)
	require.Contains(t, err.Error(), "line 3: syntax error")
	require.Same(t, before, h.srv.Config())
}

// TestAdminSetIgnored: SET client_encoding, extra_float_digits and the other settings
// drivers send on connect succeed on the console with a NOTICE "SET ignored", as on
// PgBouncer's, for stats_users too, instead of failing the driver's connect.
func TestAdminSetIgnored(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	for _, user := range []string{"admin", "stats"} {
		conn, notices := noticedConsole(t, h, user)
		for _, q := range []string{"SET client_encoding = 'UTF8'", "SET extra_float_digits = 3", "set DateStyle to ISO"} {
			tag, err := conn.Exec(context.Background(), q)
			require.NoError(t, err, "%s as %s", q, user)
			require.Equal(t, "SET", tag.String())
		}
		var got []string
		for _, n := range *notices {
			got = append(got, n.Severity+" "+n.Message)
		}
		require.Equal(t, []string{"NOTICE SET ignored", "NOTICE SET ignored", "NOTICE SET ignored"}, got)
	}
}

// noticedConsole logs in to the console as user (simple protocol, as the console takes
// nothing else) and returns the connection and the NOTICEs it gets, in order.
func noticedConsole(t *testing.T, h *harness, user string) (*pgx.Conn, *[]*pgconn.Notice) {
	t.Helper()
	cc, err := pgx.ParseConfig(h.url(user, "pgbouncer"))
	require.NoError(t, err)
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	notices := &[]*pgconn.Notice{}
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { *notices = append(*notices, n) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, notices
}

// TestAdminNoSuchDatabaseCode: every console command naming a database that does not
// exist answers "no such database" with SQLSTATE 08P01, as PgBouncer's admin_error sends
// it (send_pooler_error's default code), not 3D000 (pgmux sent PostgreSQL's
// invalid_catalog_name, which PgBouncer sends only to a client logging in).
func TestAdminNoSuchDatabaseCode(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	for _, cmd := range []string{"PAUSE", "RESUME", "DISABLE", "ENABLE", "KILL", "RECONNECT", "WAIT_CLOSE"} {
		_, err := adm.Exec(context.Background(), cmd+" nosuch")
		require.Equal(t, "08P01", sqlState(err), "%s: %v", cmd, err)
		require.Contains(t, err.Error(), "no such database: nosuch", cmd)
	}
}

// TestAdminRefusalCodes: the console's other refusals are 08P01 too, as PgBouncer's
// admin.c sends each through admin_error ("cannot pause admin db", "client not found",
// "SET failed", a syntax error, "admin access needed"): a command aimed at the console's
// own database, a KILL_CLIENT of no client, a SET of a bad value, an unknown SHOW. pgmux
// sent 22023, 55P02 or 42601 for them. (A SET of a setting that needs a restart is no
// refusal: PgBouncer answers it SET, and so does pgmux, TestAdminSetRestartOnly.)
func TestAdminRefusalCodes(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	for _, cmd := range []string{"PAUSE pgbouncer", "KILL pgbouncer", "DISABLE pgbouncer", "RECONNECT pgbouncer",
		"WAIT_CLOSE pgbouncer", "KILL_CLIENT x", "KILL_CLIENT 999999",
		"SET default_pool_size = lots", "SHOW NOTHING", "SHUTDOWN NOW", "FROBNICATE"} {
		_, err := adm.Exec(context.Background(), cmd)
		require.Equal(t, "08P01", sqlState(err), "%s: %v", cmd, err)
	}
}
