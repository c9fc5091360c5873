package faults

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestListenAfterRestart: a client that listens through the shared listener and, right
// after each of three PostgreSQL restarts, notifies its own channel hears the
// notification: the restart broke the listener's connection, and pgmux listens again
// (its reconnect, or listenmux.Listener.Restore before a listening client's request)
// before the NOTIFY can commit. Here the listener's reconnect, every 50 ms, is usually
// back before pg_ctl returns; the race Restore closes (the client's request first) is
// driven by listenmux's TestRestoreListensBeforeTheRequest.
//
// Each restart is also told: pgx's notice handler gets, once per restart and before the
// notification that follows it, pgmux's WARNING that notifications may have been missed
// (with its own connection the client would have seen that connection break).
func TestListenAfterRestart(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{})
	var mu sync.Mutex
	var notices []*pgconn.Notice
	cfg, err := pgx.ParseConfig(m.App(pgtest.AppDB))
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
	}
	ctx0, cancel0 := ctxT()
	c, err := pgx.ConnectConfig(ctx0, cfg)
	cancel0()
	require.NoError(t, err)
	t.Cleanup(func() { muxtest.CloseConn(c) })
	exec(t, c, "LISTEN after_restart")
	told := func() []*pgconn.Notice {
		mu.Lock()
		defer mu.Unlock()
		return append([]*pgconn.Notice(nil), notices...)
	}
	for round := 0; round < 3; round++ {
		pg.Restart(t, "fast")
		payload := "round " + strconv.Itoa(round)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Exec(ctx, "SELECT pg_notify('after_restart', $1)", payload)
		require.NoError(t, err, "round %d: the notifying request", round)
		n, err := c.WaitForNotification(ctx)
		cancel()
		require.NoError(t, err, "round %d: no notification after the restart", round)
		require.Equal(t, payload, n.Payload)
		got := told()
		require.Len(t, got, round+1, "round %d: one notice per restart, before the notification", round)
		last := got[round]
		require.Equal(t, "WARNING", last.Severity)
		require.Equal(t, "01000", last.Code)
		require.Contains(t, last.Message, "notifications may have been missed")
		require.Contains(t, last.Detail, "listened again")
	}
}
