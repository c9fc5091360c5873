//go:build linux

package proxy

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParkedDepartureAfterClose: the loop takes a parked client out of its set on an
// event saying its peer left, and another goroutine closes the client (KILL, shutdown:
// closeAndWake, which then finds it parked no more) before the loop peeks at its socket
// (departing). The descriptor number is free then, and the next socket opened takes it:
// the loop peeked at that socket, someone else's, and the peek takes a reset's pending
// error off it, so its owner read a clean end instead of the reset. The loop now looks
// only while the session's socket is still open.
func TestParkedDepartureAfterClose(t *testing.T) {
	s, _ := parkingSession(t)
	require.True(t, s.park())
	fd := s.rawFD
	require.GreaterOrEqual(t, fd, int32(0))

	// The session's end is not this test's concern (its server is a bare one).
	ended := make(chan struct{}, 1)
	f := func(*Session) {
		ended <- struct{}{}
		runtime.Goexit()
	}
	testHookSessionEnd.Store(&f)
	t.Cleanup(func() { testHookSessionEnd.Store(nil) })

	ln, err := net.Listen("tcp", "127.0.0.1:0") // (not made after the close: it would take fd)
	require.NoError(t, err)
	defer ln.Close()
	var other net.Conn // the socket that took fd's number
	testHookDeparting = func() {
		s.closeAndWake()
		other = socketAt(t, ln, fd)
	}
	t.Cleanup(func() { testHookDeparting = nil })
	go s.home().Event(fd, syscall.EPOLLRDHUP)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	require.NotNil(t, other)
	require.NoError(t, other.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = other.Read(make([]byte, 1))
	require.True(t, errors.Is(err, syscall.ECONNRESET), "the owner of the socket now at %d sees its reset: %v", fd, err)
}

// socketAt opens loopback connections to ln until one of their ends has descriptor fd, and
// returns it, its peer reset (the reset arrived); the others are closed at cleanup.
func socketAt(t *testing.T, ln net.Listener, fd int32) net.Conn {
	for range 64 {
		a, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		b, err := ln.Accept()
		require.NoError(t, err)
		t.Cleanup(func() { a.Close(); b.Close() })
		for _, pair := range [][2]net.Conn{{a, b}, {b, a}} {
			if socketFD(pair[0]) != fd {
				continue
			}
			require.NoError(t, pair[1].(*net.TCPConn).SetLinger(0))
			require.NoError(t, pair[1].Close()) // a reset
			require.Eventually(t, func() bool { return fdPeerClosed(int(fd)) }, 5*time.Second, time.Millisecond)
			return pair[0]
		}
	}
	t.Fatalf("no socket took descriptor %d", fd)
	return nil
}
