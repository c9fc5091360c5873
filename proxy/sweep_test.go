//go:build linux

package proxy

import (
	"net"
	"runtime"
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

// The sweep walks the clients a batch at a time in one slice it reuses: a new list each
// tick allocated 8 bytes a client every second, which grew an idle pgmux's heap (and kept
// pages) for nothing, and a list of all of them kept from tick to tick cost an idle
// client 8 bytes. Nothing stays reachable from the batch after a tick.
func TestSweepAllocatesNothing(t *testing.T) {
	srv := plainServer(t)
	require.NoError(t, srv.Close()) // its own sweep stops
	ss := make([]Session, 3*sweepBatch+1)
	for i := range ss {
		srv.register(&ss[i])
	}
	batch := make([]*Session, 0, sweepBatch)
	inUse := make(map[*poolEntry]bool)
	allocs := testing.AllocsPerRun(20, func() { srv.sweepOnce(time.Now().Unix(), batch, inUse) })
	require.Zero(t, allocs, "a tick allocated")
	require.Equal(t, make([]*Session, sweepBatch), batch[:sweepBatch], "the batch keeps no session")

	var walked []*Session
	for from := 0; ; {
		var b []*Session
		b, from = srv.clients.appendFrom(batch[:0], from, sweepBatch)
		if len(b) == 0 {
			break
		}
		walked = append(walked, b...)
	}
	require.ElementsMatch(t, srv.Sessions(), walked, "the batches hold every client once")
}

// Between ticks the idle sweep holds no copy of the client registry: it kept a list of
// every client from one tick to the next, 8 bytes an idle client (160 KB at 20,000).
// The figure is the live heap the running sweep adds over its first two ticks.
func TestSweepKeepsNoListOfClients(t *testing.T) {
	const n = 20000
	for attempt := 1; ; attempt++ {
		srv := plainServer(t)
		start := srv.clock.Load()
		ss := make([]Session, n)
		for i := range ss {
			srv.register(&ss[i])
		}
		before := liveHeap()
		early := srv.clock.Load() != start // the sweep ticked already: measured after it
		// Two ticks: the sweep advances the clock at each.
		for last, seen, deadline := srv.clock.Load(), 0, time.Now().Add(10*time.Second); seen < 2 && !early; time.Sleep(10 * time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "the sweep does not tick")
			if c := srv.clock.Load(); c != last {
				last, seen = c, seen+1
			}
		}
		time.Sleep(50 * time.Millisecond) // the tick's walk is over
		kept := int64(liveHeap()) - int64(before)
		for i := range ss {
			srv.unregister(&ss[i]) // before Close, which would end them
		}
		require.NoError(t, srv.Close())
		runtime.KeepAlive(ss)
		if early && attempt < 3 {
			continue
		}
		require.False(t, early, "the sweep ticked before each measure began")
		t.Logf("the sweep keeps %d bytes for %d clients", kept, n)
		require.Less(t, kept, int64(n*2), "the sweep keeps a list of the clients")
		return
	}
}
