package proxy_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// serverPIDs returns the backend pids of db's server connections, as SHOW SERVERS lists
// them.
func serverPIDs(t *testing.T, adm *pgx.Conn, db string) []int32 {
	t.Helper()
	_, rows := show(t, adm, "SHOW SERVERS")
	var pids []int32
	for _, r := range rows {
		if r["database"] == db {
			pids = append(pids, int32(num(t, r, "remote_pid")))
		}
	}
	return pids
}

// backendsAlive counts the backends among pids that PostgreSQL still runs (-1: the
// count failed). It is called from require.Eventually's goroutine: it must not fail the
// test itself.
func backendsAlive(direct *pgx.Conn, pids []int32) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&n); err != nil {
		return -1
	}
	return n
}

// TestAdminPauseClosesServers: PAUSE disconnects from the servers, as PgBouncer's does
// before a database restart: the idle server at once, the one in a transaction once the
// transaction ends; PAUSE answers only then, SHOW SERVERS lists nothing and PostgreSQL
// runs none of the backends; after RESUME the clients get new servers.
func TestAdminPauseClosesServers(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	idle := h.connect(t, "app", "app", false)
	busy := h.connect(t, "app", "app", false)
	ctx := context.Background()
	tx, err := busy.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	execSQL(t, idle, "SELECT 1") // a second server: the first is in busy's transaction
	adm := h.admin(t)
	pids := serverPIDs(t, adm, "app")
	require.Len(t, pids, 2)
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	require.Equal(t, 2, backendsAlive(direct, pids))

	paused := make(chan error, 1)
	go func() {
		_, err := adm.Exec(ctx, "PAUSE")
		paused <- err
	}()
	// The idle server goes at once; the busy one stays until its transaction ends.
	require.Eventually(t, func() bool { return backendsAlive(direct, pids) == 1 }, 5*time.Second, 20*time.Millisecond,
		"PAUSE closes the idle server at once")
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a transaction was open: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, tx.Commit(ctx))
	select {
	case err := <-paused:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("PAUSE did not return after the transaction ended")
	}
	adm2 := h.admin(t)
	require.Empty(t, serverPIDs(t, adm2, "app"), "SHOW SERVERS after PAUSE")
	require.Eventually(t, func() bool { return backendsAlive(direct, pids) == 0 }, 5*time.Second, 20*time.Millisecond,
		"PostgreSQL still runs the backends of the servers PAUSE should have closed")
	_, rows := show(t, adm2, "SHOW POOLS")
	p := rowWhere(rows, "database", "app")
	require.Zero(t, num(t, p, "sv_idle")+num(t, p, "sv_active")+num(t, p, "sv_used"))

	_, err = adm2.Exec(ctx, "RESUME")
	require.NoError(t, err)
	execSQL(t, idle, "SELECT 1")
	execSQL(t, busy, "SELECT 1")
	now := serverPIDs(t, adm2, "app")
	require.NotEmpty(t, now)
	for _, pid := range now {
		require.NotContains(t, pids, pid, "a server from before PAUSE")
	}
}

// queryWithin runs sql on conn and fails the test unless it succeeds within d (a pool
// left paused holds it).
func queryWithin(t *testing.T, conn *pgx.Conn, sql string, d time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := conn.Exec(ctx, sql)
	require.NoError(t, err, what)
}

// TestPauseThenResumeAtOnce: a RESUME that comes right after PAUSE has set its hold
// lifts it everywhere. The hold of the pools used to be set on goroutines PAUSE started
// after setting the console's flag: a RESUME in between cleared the flag and resumed
// pools not paused yet, and their late hold then paused them for good (queries hung,
// SHOW STATE said not paused, and RESUME refused: "pooler is not paused"). Here RESUME
// follows the moment the flag is seen, on many pools (many goroutines to race), many
// times over.
func TestPauseThenResumeAtOnce(t *testing.T) {
	const dbs = 24
	o := harnessOpts{dbs: map[string]string{}}
	pg := pgtest.Start(t)
	for i := range dbs {
		o.dbs[fmt.Sprintf("d%d", i)] = fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)
	}
	h := startProxy(t, o)
	var clients []*pgx.Conn
	for i := range dbs {
		c := h.connect(t, "app", fmt.Sprintf("d%d", i), false)
		execSQL(t, c, "SELECT 1")
		clients = append(clients, c)
	}
	adm := h.admin(t)
	for round := range 20 {
		paused := make(chan error, 1)
		go func() {
			_, err := adm.Exec(context.Background(), "PAUSE")
			paused <- err
		}()
		for !proxy.PausedAllForTest(h.srv) {
			runtime.Gosched()
		}
		require.NoError(t, h.srv.Resume(), "round %d", round)
		select {
		case <-paused: // done before RESUME, or ended by it
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: PAUSE still waiting after RESUME", round)
		}
		require.Zero(t, proxy.PoolsPausedForTest(h.srv, ""), "round %d: pools left paused after RESUME", round)
		for i, c := range clients {
			queryWithin(t, c, "SELECT 1", 5*time.Second, fmt.Sprintf("round %d: a query on d%d after PAUSE and RESUME", round, i))
		}
	}
}

// TestResumeWhilePauseWaits: with a transaction open, PAUSE waits for it; a RESUME from
// another console meanwhile lifts the hold at once and ends the waiting PAUSE with an
// error (it did not pause anything), so PAUSE's client is not told "PAUSE" after the
// pooler was resumed. Queries run, the transaction goes on, and the pooler is not paused
// (a second RESUME says so).
func TestResumeWhilePauseWaits(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	busy := h.connect(t, "app", "app", false)
	other := h.connect(t, "app", "app", false)
	ctx := context.Background()
	tx, err := busy.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err)

	for _, db := range []string{"", "app"} {
		adm1, adm2 := h.admin(t), h.admin(t)
		paused := make(chan error, 1)
		go func() {
			_, err := adm1.Exec(ctx, "PAUSE "+db)
			paused <- err
		}()
		require.Eventually(t, func() bool {
			_, rows := show(t, adm2, "SHOW DATABASES")
			return num(t, rowWhere(rows, "name", "app"), "paused") == 1 || proxy.PausedAllForTest(h.srv)
		}, 5*time.Second, 5*time.Millisecond)
		select {
		case err := <-paused:
			t.Fatalf("PAUSE %s returned with a transaction open: %v", db, err)
		case <-time.After(100 * time.Millisecond):
		}
		_, err = adm2.Exec(ctx, "RESUME "+db)
		require.NoError(t, err)
		select {
		case err := <-paused:
			require.Equal(t, "57014", sqlState(err), "PAUSE %s ended by RESUME: %v", db, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("PAUSE %s still waiting after RESUME", db)
		}
		require.Zero(t, proxy.PoolsPausedForTest(h.srv, "app"))
		queryWithin(t, other, "SELECT 1", 5*time.Second, "a query after RESUME")
		_, err = adm2.Exec(ctx, "RESUME "+db)
		require.Equal(t, "08P01", sqlState(err), "the pooler is not paused: %v", err)
		_, rows := show(t, adm2, "SHOW STATE")
		require.Equal(t, "no", rowWhere(rows, "key", "paused")["value"])
	}
	_, err = tx.Exec(ctx, "SELECT 2")
	require.NoError(t, err, "the transaction goes on")
	require.NoError(t, tx.Commit(ctx))
	queryWithin(t, busy, "SELECT 1", 5*time.Second, "the transaction's client after COMMIT")
}

// consoleCommand runs cmd on a console connection of its own and returns its outcome.
func consoleCommand(conn *pgx.Conn, cmd string) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), cmd)
		out <- err
	}()
	return out
}

// TestConsoleCancel: a CancelRequest with a console session's key (Ctrl-C in psql) ends
// the command it waits in, with 57014 as PostgreSQL answers a cancelled statement, and
// PAUSE and SUSPEND lift the hold they set (PgBouncer resumes on a console's cancel), and
// that hold only. The requests used to be dropped: a console session has no server.
func TestConsoleCancel(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	busy := h.connect(t, "app", "app", false)
	other := h.connect(t, "app", "app", false)
	ctx := context.Background()
	tx, err := busy.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	adm, adm2, watch := h.admin(t), h.admin(t), h.admin(t)

	// start runs cmd on conn and returns once cmd is seen waiting (its transaction open).
	start := func(conn *pgx.Conn, cmd string, waiting func() bool) <-chan error {
		t.Helper()
		done := consoleCommand(conn, cmd)
		require.Eventually(t, waiting, 5*time.Second, 5*time.Millisecond, "%s under way", cmd)
		select {
		case err := <-done:
			t.Fatalf("%s returned with a transaction open: %v", cmd, err)
		case <-time.After(100 * time.Millisecond):
		}
		return done
	}
	// cancel sends the CancelRequest of conn and checks that its command ends.
	cancel := func(conn *pgx.Conn, cmd string, done <-chan error) {
		t.Helper()
		require.NoError(t, conn.PgConn().CancelRequest(ctx))
		select {
		case err := <-done:
			require.Equal(t, "57014", sqlState(err), "%s cancelled: %v", cmd, err)
			require.Contains(t, err.Error(), "canceling statement due to user request")
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still waiting after the CancelRequest", cmd)
		}
	}
	state := func(key string) string {
		_, rows := show(t, watch, "SHOW STATE")
		return rowWhere(rows, "key", key)["value"].(string)
	}
	pausedDB := func() bool { return proxy.PausedDBForTest(h.srv, "app") }

	done := start(adm, "PAUSE", func() bool { return proxy.PausedAllForTest(h.srv) })
	cancel(adm, "PAUSE", done)
	require.Zero(t, proxy.PoolsPausedForTest(h.srv, ""))
	require.Equal(t, "no", state("paused"))
	queryWithin(t, other, "SELECT 1", 5*time.Second, "a query after the cancelled PAUSE")

	// SUSPEND keeps busy's transaction as it is (suspend_held_test.go) but waits for a
	// client that was logging in when it began: one that has sent nothing yet.
	login, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.port))
	require.NoError(t, err)
	defer login.Close()
	require.Eventually(t, func() bool { return proxy.LoggingInForTest(h.srv) > 0 }, 5*time.Second, 5*time.Millisecond)
	done = start(adm, "SUSPEND", func() bool { return state("suspended") == "yes" })
	cancel(adm, "SUSPEND", done)
	require.NoError(t, login.Close())
	require.Equal(t, "no", state("suspended"))
	require.Zero(t, proxy.PoolsPausedForTest(h.srv, ""))
	queryWithin(t, other, "SELECT 1", 5*time.Second, "a query after the cancelled SUSPEND")

	// A PAUSE app cancelled under a global PAUSE lifts PAUSE app, not the global one.
	pauseApp := start(adm, "PAUSE app", pausedDB)
	pauseAll := start(adm2, "PAUSE", func() bool { return proxy.PausedAllForTest(h.srv) })
	cancel(adm, "PAUSE app", pauseApp)
	require.False(t, pausedDB(), "PAUSE app lifted")
	require.Equal(t, "yes", state("paused"), "the global PAUSE stays")
	require.Equal(t, 1, proxy.PoolsPausedForTest(h.srv, "app"))
	cancel(adm2, "PAUSE", pauseAll)
	require.Zero(t, proxy.PoolsPausedForTest(h.srv, ""))
	queryWithin(t, other, "SELECT 1", 5*time.Second, "a query after both PAUSEs were cancelled")

	// WAIT_CLOSE waits for the server RECONNECT marked, which busy's transaction holds.
	_, err = watch.Exec(ctx, "RECONNECT app")
	require.NoError(t, err)
	done = start(adm, "WAIT_CLOSE app", func() bool { return true })
	cancel(adm, "WAIT_CLOSE app", done)

	// A cancel with nothing running changes nothing; the console goes on.
	require.NoError(t, adm.PgConn().CancelRequest(ctx))
	_, rows := show(t, adm, "SHOW STATE")
	require.Equal(t, "yes", rowWhere(rows, "key", "active")["value"])

	_, err = tx.Exec(ctx, "SELECT 2")
	require.NoError(t, err, "the transaction goes on")
	require.NoError(t, tx.Commit(ctx))
	_, err = watch.Exec(ctx, "RESUME")
	require.Equal(t, "08P01", sqlState(err), "nothing is held: %v", err)
}

// TestAdminStateAndDatabasesPaused: SHOW STATE and SHOW DATABASES' paused read as
// PgBouncer's (admin.c): SHOW STATE is its pause mode (active = neither paused nor
// suspended; paused = the global PAUSE only), SHOW DATABASES' paused is db_paused (PAUSE
// db, KILL db), not the global PAUSE or SUSPEND. pgmux used to say active during PAUSE
// and SUSPEND, paused for a PAUSE db, and paused on every database for PAUSE and SUSPEND.
// The super safe shutdown (WAIT_FOR_CLIENTS) leaves PgBouncer active too.
func TestAdminStateAndDatabasesPaused(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	app := h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")
	adm := h.admin(t)
	ctx := context.Background()
	check := func(when, active, paused, suspended string, dbPaused int64) {
		t.Helper()
		_, rows := show(t, adm, "SHOW STATE")
		got := map[string]any{}
		for _, r := range rows {
			got[r["key"].(string)] = r["value"]
		}
		require.Equal(t, map[string]any{"active": active, "paused": paused, "suspended": suspended}, got, when)
		_, rows = show(t, adm, "SHOW DATABASES")
		require.Equal(t, dbPaused, num(t, rowWhere(rows, "name", "app"), "paused"), "SHOW DATABASES' paused %s", when)
	}
	run := func(cmd string) {
		t.Helper()
		_, err := adm.Exec(ctx, cmd)
		require.NoError(t, err, cmd)
	}

	check("at first", "yes", "no", "no", 0)
	run("PAUSE app")
	check("after PAUSE app", "yes", "no", "no", 1)
	run("RESUME app")
	run("PAUSE")
	check("after PAUSE", "no", "yes", "no", 0)
	run("RESUME")
	run("SUSPEND")
	check("after SUSPEND", "no", "no", "yes", 0)
	run("RESUME")
	run("KILL app") // app's client goes too
	check("after KILL app", "yes", "no", "no", 1)
	run("RESUME app")
	check("after RESUME", "yes", "no", "no", 0)

	app = h.connect(t, "app", "app", false)
	execSQL(t, app, "SELECT 1")

	stopped := beginSuperSafeShutdown(t, h)
	check("during SHUTDOWN WAIT_FOR_CLIENTS", "yes", "no", "no", 0)
	require.NoError(t, app.Close(ctx))
	stopped()
}

// beginSuperSafeShutdown starts h's shutdown that waits for every client to leave
// (SHUTDOWN WAIT_FOR_CLIENTS, SIGTERM) and returns once new clients are refused; the
// function it returns waits for the shutdown to end (the clients gone).
func beginSuperSafeShutdown(t *testing.T, h *harness) (stopped func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.srv.Stop(context.Background(), proxy.ShutdownWaitForClients) }()
	require.Eventually(t, func() bool {
		_, err := h.tryConnect("app", "app", false)
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "the shutdown refuses new clients")
	return func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the shutdown did not end once the clients left")
		}
	}
}
