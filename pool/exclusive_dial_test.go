package pool_test

import (
	"context"
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
	connDialedAcross(t, func(p *pool.Pool) { p.CloseIdleFor(5 * time.Second) })
}

// TestReconnectClosesConnDialedAcrossIt: the same for RECONNECT. A min_pool_size
// connection whose dial began before RECONNECT may have reached the host RECONNECT was
// meant to leave (a failover, a changed DNS name): it is closed when it would go idle, as
// a connection open at that moment is, not kept. Before, its creation time was stamped
// after its login, so it escaped the mark.
func TestReconnectClosesConnDialedAcrossIt(t *testing.T) {
	t.Parallel()
	connDialedAcross(t, func(p *pool.Pool) { p.Reconnect() })
}

// connDialedAcross runs a min_pool_size dial that is held until mark has run, and
// requires the connection to be closed once its login ends.
func connDialedAcross(t *testing.T, mark func(p *pool.Pool)) {
	pg := pgtest.Start(t)
	port, accepted, proceed, stop := holdFirstDial(t, pg, false)
	p := newPool(t, pool.Options{Size: 2, MinSize: 1, Target: relayTarget(pg, port)})
	t.Cleanup(stop) // before the pool's Close, which would wait for the held dial
	select {
	case <-accepted:
	case <-time.After(wait):
		t.Fatalf("min_pool_size dialed nothing within %v", wait)
	}
	mark(p)
	close(proceed)
	eventually(t, func() bool { return p.Stats().Connects >= 1 }, "the held dial never logged in")
	eventually(t, func() bool { return len(p.Conns()) == 0 },
		"the connection whose dial spanned the mark was kept")
	require.Equal(t, uint64(1), p.Stats().Connects)
}

// TestDedicatedDialedAcrossReconnectIsRedialed: a dedicated (replication) connection
// whose dial began before RECONNECT is never released, so the mark's "close on release"
// would never close it, and RECONNECT ended the streams open at its moment only: it
// would stream from the host RECONNECT was meant to leave, and WAIT_CLOSE would wait for
// it. Dedicated dials again instead, and the caller gets a connection made after the mark.
func TestDedicatedDialedAcrossReconnectIsRedialed(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	port, accepted, proceed, stop := holdFirstDial(t, pg, true)
	p := newPool(t, pool.Options{Size: 2, Target: relayTarget(pg, port)})
	t.Cleanup(stop) // before the pool's Close
	type result struct {
		c   *pool.Conn
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := p.Dedicated(context.Background(), nil)
		got <- result{c, err}
	}()
	select {
	case <-accepted:
	case <-time.After(wait):
		t.Fatalf("Dedicated dialed nothing within %v", wait)
	}
	p.Reconnect()
	close(proceed)
	var r result
	select {
	case r = <-got:
	case <-time.After(wait):
		t.Fatalf("Dedicated returned nothing within %v", wait)
	}
	require.NoError(t, r.err)
	t.Cleanup(func() { r.c.Discard(pool.ErrDedicated) })
	require.False(t, r.c.CloseNeeded(), "the connection made across RECONNECT was handed over")
	require.Zero(t, p.Stale(), "WAIT_CLOSE would wait for a connection nothing closes")
	require.Equal(t, uint64(1), p.Stats().Connects)
	require.Len(t, p.Conns(), 1)
}

// relayTarget is pg's application target reached at a relay's port.
func relayTarget(pg *pgtest.Server, port int) func() *pool.Target {
	return func() *pool.Target {
		tg := appTarget(pg)
		tg.Host, tg.Port = "127.0.0.1", port
		return tg
	}
}

// holdFirstDial starts a relay to pg (pgtest's) that holds the first connection until
// proceed is closed (accepted is closed as it comes); later ones are relayed at once when
// passLater, else held until stop.
func holdFirstDial(t *testing.T, pg *pgtest.Server, passLater bool) (port int, accepted, proceed chan struct{}, stop func()) {
	accepted, proceed = make(chan struct{}), make(chan struct{})
	port, stop = pg.Relay(t, func(n int) <-chan struct{} {
		switch {
		case n == 1:
			close(accepted)
			return proceed
		case passLater:
			return nil
		}
		return make(chan struct{}) // never
	})
	return port, accepted, proceed, stop
}
