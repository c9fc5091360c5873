package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestAdminHoldRules: the console refuses what PgBouncer's admin.c refuses, with its
// words: PAUSE [db], SUSPEND and KILL [db] while the pooler is PAUSEd or SUSPENDed
// ("already suspended/paused"), SUSPEND while a database is paused or killed ("cannot
// suspend with paused databases"); a PAUSE db of a database already paused is accepted,
// as PgBouncer's. Each refusal is an ERROR with SQLSTATE 08P01, as PgBouncer's
// admin_error sends it. pgmux let PAUSE through during SUSPEND and SUSPEND during PAUSE,
// refused the second PAUSE db, and answered these refusals with 55000.
func TestAdminHoldRules(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	run, refused := consoleCmds(t, h.admin(t))
	const busy = "already suspended/paused"

	run("SUSPEND")
	refused("PAUSE", busy)
	refused("PAUSE app", busy)
	refused("SUSPEND", busy)
	refused("KILL app", busy)
	run("RESUME")

	run("PAUSE")
	refused("SUSPEND", busy)
	refused("PAUSE", busy)
	refused("PAUSE app", busy)
	refused("KILL app", busy)
	run("RESUME")

	run("PAUSE app")
	run("PAUSE app") // PgBouncer pauses it again
	refused("SUSPEND", "cannot suspend with paused databases")
	run("PAUSE") // a global PAUSE over a paused database is allowed
	run("RESUME")

	run("KILL app")
	refused("SUSPEND", "cannot suspend with paused databases")
	run("RESUME app")
	run("SUSPEND")
	run("RESUME")
	execSQL(t, h.connect(t, "app", "app", false), "SELECT 1")
}

// consoleCmds returns run, which runs a console command on adm and requires it to work,
// and refused, which requires it to fail with PgBouncer's SQLSTATE for a console refusal
// (08P01, admin_error's default) and its msg.
func consoleCmds(t *testing.T, adm *pgx.Conn) (run func(cmd string), refused func(cmd, msg string)) {
	run = func(cmd string) {
		t.Helper()
		_, err := adm.Exec(context.Background(), cmd)
		require.NoError(t, err, cmd)
	}
	refused = func(cmd, msg string) {
		t.Helper()
		_, err := adm.Exec(context.Background(), cmd)
		var pe *pgconn.PgError
		require.ErrorAs(t, err, &pe, cmd)
		require.Equal(t, "08P01", pe.Code, cmd)
		require.Equal(t, msg, pe.Message, cmd)
	}
	return run, refused
}

// TestAdminPauseClosesListener: PAUSE closes the shared LISTEN connection of a database
// (listen_mode = multiplex), as it closes its pooled servers, so that nothing of pgmux's
// stays connected to a database being restarted; RESUME connects it again before it
// answers, LISTENing on every channel: each client that LISTENed before PAUSE receives
// the NOTIFYs sent right after RESUME on each of its channels. KILL closes it too (and
// its clients: new ones LISTEN after RESUME). pgmux kept the listener's backend through
// PAUSE.
func TestAdminPauseClosesListener(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	channels := [][]string{{"pausech"}, {"pausech2", "pausech3"}} // per client
	var clients []*pgx.Conn
	listen := func() {
		clients = clients[:0]
		for _, chs := range channels {
			c := h.connect(t, "app", "app", false)
			for _, ch := range chs {
				_, err := c.Exec(ctx, "LISTEN "+ch)
				require.NoError(t, err)
			}
			clients = append(clients, c)
		}
	}
	listen()
	adm := h.admin(t)
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)

	for _, tc := range []struct{ cmd, resume string }{{"PAUSE", "RESUME"}, {"PAUSE app", "RESUME app"}, {"KILL app", "RESUME app"}} {
		cmd := tc.cmd
		t.Run(cmd, func(t *testing.T) {
			listener := listenerPID(t, adm)
			require.NotZero(t, listener, "SHOW SERVERS lists the listener")
			require.Equal(t, 1, backendsAlive(direct, []int32{listener}))

			_, err := adm.Exec(ctx, cmd)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return backendsAlive(direct, []int32{listener}) == 0 },
				5*time.Second, 20*time.Millisecond, "%s leaves the listener's backend running", cmd)
			require.Zero(t, listenerPID(t, adm), "SHOW SERVERS still lists the listener after %s", cmd)

			_, err = adm.Exec(ctx, tc.resume)
			require.NoError(t, err)
			if cmd == "KILL app" {
				listen() // KILL ended the clients before
			}
			for i, chs := range channels {
				for _, ch := range chs {
					_, err = direct.Exec(ctx, "NOTIFY "+ch+", '"+cmd+"'")
					require.NoError(t, err)
					wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
					n, err := clients[i].WaitForNotification(wctx)
					wcancel()
					require.NoError(t, err, "no notification on %s after RESUME", ch)
					require.Equal(t, ch, n.Channel)
					require.Equal(t, cmd, n.Payload)
				}
			}
			require.NotZero(t, listenerPID(t, adm), "the listener is back")
		})
	}
}

// listenerPID is the backend pid of the listener connection SHOW SERVERS lists, or 0.
func listenerPID(t *testing.T, adm *pgx.Conn) int32 {
	t.Helper()
	_, rows := show(t, adm, "SHOW SERVERS")
	if r := rowWhere(rows, "state", "listener"); r != nil {
		return int32(num(t, r, "remote_pid"))
	}
	return 0
}

// TestResumeWithoutDatabase: RESUME without a database lifts the global PAUSE or SUSPEND
// and nothing else, as PgBouncer's admin.c does: a database held by PAUSE db or KILL db
// stays held until RESUME db (PgBouncer's manual: after PAUSE db and then PAUSE, two
// RESUMEs are needed); with no global hold RESUME answers "pooler is not
// paused/suspended", and "pooler is shutting down" once a shutdown has begun. SIGUSR2
// (Server.Resume) is the same RESUME. pgmux's RESUME lifted every per-database hold too.
func TestResumeWithoutDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{dbs: map[string]string{
		"other": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)}})
	adm := h.admin(t)
	ctx := context.Background()
	app, other := h.connect(t, "app", "app", false), h.connect(t, "app", "other", false)
	execSQL(t, app, "SELECT 1")
	execSQL(t, other, "SELECT 1")
	run, refused := consoleCmds(t, adm)
	held := func(when string, want int64) {
		t.Helper()
		_, rows := show(t, adm, "SHOW DATABASES")
		require.Equal(t, want, num(t, rowWhere(rows, "name", "app"), "paused"), "SHOW DATABASES' paused of app %s", when)
		if want == 1 {
			require.NotZero(t, proxy.PoolsPausedForTest(h.srv, "app"), "app's pool is not held %s", when)
		} else {
			require.Zero(t, proxy.PoolsPausedForTest(h.srv, "app"), "app's pool is held %s", when)
		}
	}
	const notHeld = "pooler is not paused/suspended"

	run("PAUSE app")
	refused("RESUME", notHeld)
	held("after PAUSE app and RESUME", 1)
	require.Error(t, h.srv.Resume(), "SIGUSR2 with only a database paused")
	held("after PAUSE app and SIGUSR2", 1)

	run("PAUSE") // over the paused database: two RESUMEs are needed
	run("RESUME")
	_, rows := show(t, adm, "SHOW STATE")
	require.Equal(t, "no", rowWhere(rows, "key", "paused")["value"])
	held("after PAUSE app, PAUSE and RESUME", 1)
	queryWithin(t, other, "SELECT 1", 5*time.Second, "a query on a database only the global PAUSE held")
	refused("RESUME", notHeld)
	run("RESUME app")
	held("after RESUME app", 0)
	queryWithin(t, app, "SELECT 1", 5*time.Second, "a query after RESUME app")

	run("KILL app")
	refused("RESUME", notHeld)
	held("after KILL app and RESUME", 1)
	refused("SUSPEND", "cannot suspend with paused databases")
	run("RESUME app")
	refused("RESUME app", "database app is not paused")
	held("after KILL app and RESUME app", 0)

	run("PAUSE")
	stopped := beginSuperSafeShutdown(t, h)
	refused("RESUME", "pooler is shutting down")
	require.Error(t, h.srv.Resume(), "SIGUSR2 during a shutdown")
	_, rows = show(t, adm, "SHOW STATE")
	require.Equal(t, "yes", rowWhere(rows, "key", "paused")["value"], "still paused during the shutdown")
	require.NoError(t, other.Close(ctx))
	require.NoError(t, app.Close(ctx))
	stopped()
}
