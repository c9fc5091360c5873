package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestReconnectDuringResetClosesServer: RECONNECT closes every server connection created
// before it, at release at the latest, as PgBouncer's does. One whose client has left and
// that is still running server_reset_query when RECONNECT comes is closed once the reset
// ends, not put back idle: its backend exits, WAIT_CLOSE returns, and the next client gets
// another backend.
func TestReconnectDuringResetClosesServer(t *testing.T) {
	const reset = "SELECT pg_sleep(1), 'reconnect during reset'"
	h := startProxy(t, harnessOpts{mode: "session", extra: map[string]string{"server_reset_query": reset}})
	ctx := context.Background()
	adm := h.admin(t)
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)

	app, err := h.tryConnect("app", "app", true)
	require.NoError(t, err)
	var old int32
	require.NoError(t, app.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&old))
	require.NoError(t, app.Close(ctx)) // session mode: the reset runs now, on release

	inReset := func() bool {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var n int
		err := direct.QueryRow(qctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query = $2 AND state = 'active'",
			old, reset).Scan(&n)
		return err == nil && n == 1
	}
	require.Eventually(t, inReset, 10*time.Second, 10*time.Millisecond, "the reset never ran on the server")
	_, err = adm.Exec(ctx, "RECONNECT app")
	require.NoError(t, err)
	require.True(t, inReset(), "the reset ended before RECONNECT: the test proves nothing")

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = adm.Exec(wctx, "WAIT_CLOSE app")
	require.NoError(t, err, "WAIT_CLOSE: the server RECONNECT marked never closed")
	require.Eventually(t, func() bool { return backendsAlive(direct, []int32{old}) == 0 }, 10*time.Second, 50*time.Millisecond,
		"backend %d, in its reset at RECONNECT, still runs", old)

	next := h.connect(t, "app", "app", true) // simple: its statements do not meet the first client's, which the reset leaves
	var pid int32
	require.NoError(t, next.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	require.NotEqual(t, old, pid, "the next client got the server that was in its reset at RECONNECT")
}
