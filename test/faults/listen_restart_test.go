package faults

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestListenAfterRestart: a client that listens through the shared listener and, right
// after each of three PostgreSQL restarts, notifies its own channel hears the
// notification: the restart broke the listener's connection, and pgmux listens again
// (its reconnect, or listenmux.Listener.Restore before a listening client's request)
// before the NOTIFY can commit. Here the listener's reconnect, every 50 ms, is usually
// back before pg_ctl returns; the race Restore closes (the client's request first) is
// driven by listenmux's TestRestoreListensBeforeTheRequest.
func TestListenAfterRestart(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{})
	c := connect(t, m.App(pgtest.AppDB))
	exec(t, c, "LISTEN after_restart")
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
	}
}
