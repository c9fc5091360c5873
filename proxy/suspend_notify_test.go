package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSuspendHoldsNotifications: while the pooler is SUSPENDed no notification reaches a
// client, as PgBouncer reads no server then; at RESUME every one sent meanwhile arrives,
// in order. pgmux's shared listener delivered them during SUSPEND.
func TestSuspendHoldsNotifications(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"suspend_timeout": "0"}})
	ctx := context.Background()

	cc, err := pgx.ParseConfig(h.url("app", "app"))
	require.NoError(t, err)
	// A wait that times out ends on a read deadline, the connection kept, with no
	// CancelRequest sent to the suspended pooler.
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	lis, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close(context.Background()) })
	_, err = lis.Exec(ctx, "LISTEN jobs")
	require.NoError(t, err)

	adm := h.admin(t)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = adm.Exec(sctx, "SUSPEND")
	cancel()
	require.NoError(t, err, "SUSPEND")

	// Another session, straight to PostgreSQL: pgmux's clients wait for RESUME.
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	const n = 20
	for i := range n {
		_, err := direct.Exec(ctx, fmt.Sprintf("NOTIFY jobs, 'p%d'", i))
		require.NoError(t, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = lis.WaitForNotification(wctx)
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
