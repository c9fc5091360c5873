package pool_test

import (
	"io"
	"net"
	"strconv"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted, proceed, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		for first := true; ; first = false {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func(nc net.Conn, first bool) {
				defer nc.Close()
				if !first {
					<-done
					return
				}
				close(accepted)
				select {
				case <-proceed:
				case <-done:
					return
				}
				up, err := net.Dial("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)))
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, nc); up.Close() }()
				_, _ = io.Copy(nc, up)
			}(nc, first)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	p := newPool(t, pool.Options{Size: 2, MinSize: 1, Target: func() *pool.Target {
		tg := appTarget(pg)
		tg.Host, tg.Port = "127.0.0.1", port
		return tg
	}})
	t.Cleanup(func() { close(done); ln.Close() }) // before the pool's Close
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
