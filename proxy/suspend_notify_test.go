package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// suspendedListeners starts pgmux, connects n clients that LISTEN on jobs, and SUSPENDs
// it; it returns the harness, the console and the clients. A client's wait that times
// out ends on a read deadline, the connection kept, with no CancelRequest sent to the
// suspended pooler.
func suspendedListeners(t *testing.T, n int) (*harness, *pgx.Conn, []*pgx.Conn) {
	t.Helper()
	h := startProxy(t, harnessOpts{extra: map[string]string{"suspend_timeout": "0"}})
	cc, err := pgx.ParseConfig(h.url("app", "app"))
	require.NoError(t, err)
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var clients []*pgx.Conn
	for range n {
		c, err := pgx.ConnectConfig(ctx, cc)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		_, err = c.Exec(ctx, "LISTEN jobs")
		require.NoError(t, err)
		clients = append(clients, c)
	}
	adm := h.admin(t)
	_, err = adm.Exec(ctx, "SUSPEND")
	require.NoError(t, err, "SUSPEND")
	return h, adm, clients
}

// TestSuspendHoldsNotifications: while the pooler is SUSPENDed no notification reaches a
// client, as PgBouncer reads no server then; at RESUME every one sent meanwhile arrives,
// in order. pgmux's shared listener delivered them during SUSPEND.
func TestSuspendHoldsNotifications(t *testing.T) {
	h, adm, clients := suspendedListeners(t, 1)
	lis := clients[0]
	ctx := context.Background()

	// Another session, straight to PostgreSQL: pgmux's clients wait for RESUME.
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	const n = 20
	for i := range n {
		_, err := direct.Exec(ctx, fmt.Sprintf("NOTIFY jobs, 'p%d'", i))
		require.NoError(t, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := lis.WaitForNotification(wctx)
	cancel()
	require.Error(t, err, "a notification reached the client during SUSPEND")
	require.True(t, pgconn.Timeout(err), "waiting during SUSPEND: %v", err)

	_, err = adm.Exec(ctx, "RESUME")
	require.NoError(t, err)
	for i := range n {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		nf, err := lis.WaitForNotification(wctx)
		cancel()
		require.NoError(t, err, "notification %d after RESUME", i)
		require.Equal(t, "jobs", nf.Channel)
		require.Equal(t, fmt.Sprintf("p%d", i), nf.Payload, "in order")
	}
	// And the client works on.
	var one int
	require.NoError(t, lis.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
}

// TestSuspendBoundsHeldNotifications: during SUSPEND a listening client's queue holds
// HeldNotesMax bytes of notifications, and the one that crossed it, however many are
// sent; the shared listener then stops reading, so the rest wait in its socket and in
// PostgreSQL's queue. At RESUME every client gets every one, in order, and works on.
// Before, each client's queue grew with all that was sent.
func TestSuspendBoundsHeldNotifications(t *testing.T) {
	h, adm, clients := suspendedListeners(t, 2)
	ctx := context.Background()

	// 800 kB of notifications, 200 times the bound, 50 to a transaction.
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	const n, size = 400, 2000
	payload := func(i int) string { return fmt.Sprintf("p%04d-%s", i, strings.Repeat("x", size)) }
	for i := 0; i < n; i += 50 {
		var sql strings.Builder
		for j := i; j < i+50; j++ {
			fmt.Fprintf(&sql, "NOTIFY jobs, '%s';", payload(j))
		}
		_, err := direct.Exec(ctx, sql.String())
		require.NoError(t, err)
	}
	// The listener reads what it will: watch the queues until they stop growing.
	most, total, last, still := 0, 0, -1, time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && time.Since(still) < 500*time.Millisecond; {
		m, tot := proxy.HeldNotesForTest(h.srv)
		most = max(most, m)
		if tot != last {
			last, still = tot, time.Now()
		}
		total = tot
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("held during SUSPEND: %d bytes in the fullest queue, %d in all", most, total)
	msg := 1 + 4 + 4 + len("jobs") + 1 + len(payload(0)) + 1 // one NotificationResponse
	require.LessOrEqual(t, most, proxy.HeldNotesMax-1+msg, "a client's queue grew past its bound")
	require.Positive(t, most, "the listener read nothing during SUSPEND")

	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := clients[0].WaitForNotification(wctx)
	cancel()
	require.True(t, pgconn.Timeout(err), "a notification reached a client during SUSPEND: %v", err)

	_, err = adm.Exec(ctx, "RESUME")
	require.NoError(t, err)
	for k, c := range clients {
		for i := range n {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			nf, err := c.WaitForNotification(wctx)
			cancel()
			require.NoError(t, err, "client %d, notification %d after RESUME", k, i)
			require.Equal(t, payload(i), nf.Payload, "client %d: in order, none lost", k)
		}
		var one int
		require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.Equal(t, 1, one)
	}
	_, total = proxy.HeldNotesForTest(h.srv)
	require.Zero(t, total, "notifications left in the queues")
}
