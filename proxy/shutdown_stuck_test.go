package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/proxy"
)

// TestStopLeavesStuckSession: a client session that does not end once a shutdown has cut
// it (a bug, here a test hook holding its last step) does not hold Stop forever: Stop
// logs it by its client id, closes its socket and returns within its bounds (killMax to
// cut, sessionsEndWait for the sessions, serversEndWait for the servers: some 5 s).
func TestStopLeavesStuckSession(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := startProxy(t, harnessOpts{log: zap.New(core)})
	release := proxy.HoldSessionEndForTest()
	t.Cleanup(release) // before the harness's Close (cleanups run last first)
	conn := h.connect(t, "app", "app", false)
	var one int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
	var id uint64
	for _, sess := range h.srv.Sessions() {
		if in := sess.Info(); in.Database == "app" {
			id = in.ID
		}
	}
	require.NotZero(t, id, "the client's session")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Stop(ctx, proxy.ShutdownImmediate) }()
	select {
	case <-stopped:
	case <-time.After(8 * time.Second):
		t.Fatal("Stop still waits for a session that does not end, 8 s on")
	}
	t.Logf("Stop returned in %v", time.Since(start))
	var found bool
	for _, e := range logs.FilterMessageSnippet("did not end").All() {
		if c, ok := e.ContextMap()["client"]; ok && c == id {
			found = true
		}
	}
	require.True(t, found, "no log of the session left behind (client %d): %v", id, logs.All())
}
