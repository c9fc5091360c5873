package proxy_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestSlowListenersBounded: two clients LISTEN and stop reading, one idle, one in the
// middle of a long answer it does not read; 23 MB of notifications follow. Each of their
// queues stays within its bound (1 MiB, notesMax; 2 MiB allowed here), each is closed
// (logged, with the bytes it held), and the client that reads gets every notification,
// in order, never waiting long for the others. Before, the busy client's queue grew
// with everything sent, and the shared listener wrote to the idle one itself, waiting
// 5 s for its full socket while every other listener waited too.
func TestSlowListenersBounded(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := startProxy(t, harnessOpts{log: zap.New(core)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	listen := func(reads bool) *pgx.Conn {
		c := h.connect(t, "app", "app", false)
		_, err := c.Exec(ctx, "LISTEN jobs")
		require.NoError(t, err)
		if !reads { // a small receive buffer: the kernel holds little of what it does not read
			require.NoError(t, c.PgConn().Conn().(*net.TCPConn).SetReadBuffer(4096))
		}
		return c
	}
	good, _, busy := listen(true), listen(false), listen(false) // the second never reads again
	q, err := (&pgproto3.Query{String: "SELECT repeat('x', 8000) FROM generate_series(1, 10000)"}).Encode(nil)
	require.NoError(t, err)
	_, err = busy.PgConn().Conn().Write(q) // 80 MB of rows, never read
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // its relay fills the socket and waits on it

	var most atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			m, _ := proxy.HeldNotesForTest(h.srv)
			if int64(m) > most.Load() {
				most.Store(int64(m))
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	const n, per = 3000, 100 // 3000 notifications of ~7.9 kB, 100 to a transaction
	payload := func(i int) string { return fmt.Sprintf("p%05d-%s", i, strings.Repeat("y", 7880)) }
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += per {
			var sql strings.Builder
			for j := i; j < i+per; j++ {
				fmt.Fprintf(&sql, "NOTIFY jobs, '%s';", payload(j))
			}
			if _, err := direct.Exec(ctx, sql.String()); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var longest time.Duration
	last := time.Now()
	for i := range n {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		nf, err := good.WaitForNotification(wctx)
		wcancel()
		require.NoError(t, err, "notification %d", i)
		require.Equal(t, payload(i), nf.Payload, "in order, none lost")
		longest = max(longest, time.Since(last))
		last = time.Now()
	}
	require.NoError(t, <-sent)
	close(stop)
	<-watched
	t.Logf("fullest queue: %d bytes; longest wait between two notifications: %v", most.Load(), longest)
	require.LessOrEqual(t, most.Load(), int64(2<<20), "a slow client's queue grew past its bound")
	require.Less(t, longest, 3*time.Second, "the reading client waited on the others")

	require.Eventually(t, func() bool { return len(h.srv.Sessions()) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the clients that do not read are closed")
	closed := logs.FilterMessage("client does not read its notifications: closing it").All()
	require.Len(t, closed, 2, "each is logged")
	for _, e := range closed {
		require.Greater(t, e.ContextMap()["queued_bytes"], int64(1<<20))
	}
	var one int
	require.NoError(t, good.QueryRow(ctx, "SELECT 1").Scan(&one), "the reading client works on")
}
