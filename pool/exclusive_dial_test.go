package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

// TestCloseIdleForClosesConnDialedAcrossIt: a min_pool_size connection whose dial began
// before CloseIdleFor (a DROP DATABASE) and whose login ended after it is out at that
// moment as a leased one is: it is closed when it would go idle, not kept, or the DROP
// would find the database in use. The test server is reached through a relay that holds
// the first connection until CloseIdleFor has run and every later one until the end.
func TestCloseIdleForClosesConnDialedAcrossIt(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	accepted, proceed := make(chan struct{}), make(chan struct{})
	port, stop := pg.Relay(t, func(n int) <-chan struct{} {
		if n > 1 {
			return make(chan struct{}) // never
		}
		close(accepted)
		return proceed
	})
	p := newPool(t, pool.Options{Size: 2, MinSize: 1, Target: func() *pool.Target {
		tg := appTarget(pg)
		tg.Host, tg.Port = "127.0.0.1", port
		return tg
	}})
	t.Cleanup(stop) // before the pool's Close
	select {
	case <-accepted:
	case <-time.After(wait):
		t.Fatalf("min_pool_size dialed nothing within %v", wait)
	}
	p.CloseIdleFor(5 * time.Second)
	close(proceed)
	eventually(t, func() bool { return p.Stats().Connects >= 1 }, "the held dial never logged in")
	eventually(t, func() bool { return len(p.Conns()) == 0 },
		"the connection whose dial spanned CloseIdleFor was kept")
	require.Equal(t, uint64(1), p.Stats().Connects)
}
