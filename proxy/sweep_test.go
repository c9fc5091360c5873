//go:build linux

package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
)

// The sweep parks a client only once it has surely been idle for parkAfter. The clock
// it reads is the last tick's, so a client found idle for one tick may have gone idle a
// moment ago: at 5,000 clients on a pool of 20, hundreds were between two requests at
// every sweep, and each was parked and resumed (its net.Conn rebuilt) for nothing.
func TestSweepParksOnlyPastParkAfter(t *testing.T) {
	s, _ := parkingSession(t)
	t.Cleanup(func() { s.home().unpark(s) }) // nothing resumes it: it has no pool
	const tick = int64(1_000_000)
	s.srv.clock.Store(tick)
	type result struct {
		park bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, _, park, err := s.next(false)
		done <- result{park, err}
	}()
	require.Eventually(t, func() bool { return s.idleAt.Load() == tick }, 5*time.Second, time.Millisecond,
		"the idle client advertises since when")

	s.kickIfIdle(tick+1, parkAfter) // one tick: it may have been idle for a millisecond
	require.Equal(t, tick, s.idleAt.Load(), "kicked after one tick")
	select {
	case r := <-done:
		t.Fatalf("the read ended after one tick: %+v", r)
	default:
	}

	s.kickIfIdle(tick+2, parkAfter) // two ticks: idle for at least parkAfter
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.True(t, r.park, "the client is parked")
	case <-time.After(5 * time.Second):
		t.Fatal("a client idle past parkAfter was not parked")
	}
	require.True(t, s.home().unpark(s))
}

// peersClosed polls many sockets in one call (several, past pollBatch): a closed or reset
// peer is reported, an open one or a descriptor that is not open is not.
func TestPeersClosed(t *testing.T) {
	open, _ := tcpPair(t)
	finned, c1 := tcpPair(t)
	reset, c2 := tcpPair(t)
	for _, c := range []net.Conn{open, finned, reset} {
		t.Cleanup(func() { _ = c.Close() })
	}
	require.NoError(t, c1.Close())
	require.NoError(t, c2.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c2.Close())
	fd := func(c net.Conn) int32 { return socketFD(c) }
	require.Eventually(t, func() bool { return fdPeerClosed(int(fd(finned))) && fdPeerClosed(int(fd(reset))) },
		5*time.Second, time.Millisecond)

	const notOpen = 1 << 20
	pattern := []int32{fd(open), fd(finned), fd(reset), notOpen}
	want := []bool{false, true, true, false}
	n := 2*pollBatch + 3
	fds, gone := make([]int32, n), make([]bool, n)
	for i := range fds {
		fds[i] = pattern[i%len(pattern)]
	}
	peersClosed(fds, gone)
	for i := range fds {
		require.Equal(t, want[i%len(want)], gone[i], "descriptor %d (entry %d)", fds[i], i)
	}
}

// dropGoneWaiters takes a waiting client whose peer left out of its pool's queue and
// stops counting it as waiting; a waiting client still there, and one not waiting whose
// peer left, are left alone.
func TestDropGoneWaiters(t *testing.T) {
	p, err := pool.New(pool.Options{Target: func() *pool.Target { return &pool.Target{} }})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	entry := &poolEntry{key: poolKey{db: "app", user: "u"}, pool: p}
	session := func(state ClientState, leave bool) *Session {
		s, client := parkingSession(t)
		s.entry, s.state = entry, state
		if leave {
			require.NoError(t, client.Close())
			require.Eventually(t, func() bool { return fdPeerClosed(int(s.fd)) }, 5*time.Second, time.Millisecond)
		}
		return s
	}
	left := session(ClientWaiting, true)
	stays := session(ClientWaiting, false)
	idle := session(ClientIdle, true)
	closed := session(ClientWaiting, true)
	closed.closeAndWake() // its descriptor may be another's now: not polled
	require.Equal(t, int32(-1), closed.pollFD())

	left.srv.dropGoneWaiters([]*Session{left, stays, idle, closed})
	require.Equal(t, ClientClosed, left.state, "a waiting client that left is not waiting")
	require.Equal(t, ClientWaiting, stays.state)
	require.Equal(t, ClientIdle, idle.state)
	require.Equal(t, ClientWaiting, closed.state, "a closed session is left to its own goroutine")
}

// The sweep's list of sessions is refilled in place each tick: an idle pgmux allocated
// 8 bytes a client every second there, which grew its heap (and kept pages) for nothing.
func TestSweepListAllocatesNothing(t *testing.T) {
	srv := &Server{}
	for range 100 {
		srv.clients.add(&Session{})
	}
	list := srv.appendSessions(nil)
	require.Len(t, list, 100)
	allocs := testing.AllocsPerRun(20, func() {
		list = srv.appendSessions(list[:0])
	})
	require.Zero(t, allocs, "refilling the list allocated")
	require.Len(t, list, 100)
}
