//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// acceptedPair returns a client connection as the listener makes it (acceptedConn), over
// one end of a socket pair, its descriptor, and the other end as the client's.
func acceptedPair(t *testing.T) (net.Conn, int, *os.File) {
	t.Helper()
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	nc, err := accepted(int32(pair[0]))
	require.NoError(t, err)
	peer := os.NewFile(uintptr(pair[1]), "peer")
	t.Cleanup(func() { _ = peer.Close() })
	return nc, pair[0], peer
}

// TestCloseAtEndBatches: the sockets of clients that left are closed together, by one
// batch, after the moment they left; until then their descriptors stay open.
func TestCloseAtEndBatches(t *testing.T) {
	lc := &laterCloser{delay: time.Hour} // the test flushes the batch itself
	const n = 20
	fds := make([]int, n)
	for i := range n {
		var nc net.Conn
		nc, fds[i], _ = acceptedPair(t)
		lc.closeAtEnd(nc, true)
	}
	require.Equal(t, n, lc.pending(), "the departures wait for one batch")
	for _, fd := range fds {
		_, err := fcntl(fd, syscall.F_GETFD)
		require.NoError(t, err, "descriptor %d open until the batch", fd)
	}
	lc.flush()
	require.Zero(t, lc.pending())
	for _, fd := range fds {
		_, err := fcntl(fd, syscall.F_GETFD)
		require.ErrorIs(t, err, syscall.EBADF, "descriptor %d closed by the batch", fd)
	}
}

// TestCloseAtEndNow: a session pgmux ends is closed at once (its client reads the end of
// the stream now), as is any connection that is not a plain socket's file.
func TestCloseAtEndNow(t *testing.T) {
	lc := &laterCloser{delay: time.Hour}
	nc, fd, peer := acceptedPair(t)
	lc.closeAtEnd(nc, false)
	require.Zero(t, lc.pending())
	_, err := fcntl(fd, syscall.F_GETFD)
	require.ErrorIs(t, err, syscall.EBADF)
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = peer.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)

	c := &countingCloser{}
	lc.closeAtEnd(c, true)
	require.Equal(t, 1, c.n)
	require.Zero(t, lc.pending())
}

// TestCloseAtEndTimer: a batch closes on its own, its delay after its first file.
func TestCloseAtEndTimer(t *testing.T) {
	lc := &laterCloser{delay: 10 * time.Millisecond}
	nc, _, _ := acceptedPair(t)
	lc.closeAtEnd(nc, true)
	require.Equal(t, 1, lc.pending())
	deadline := time.Now().Add(10 * time.Second)
	for lc.pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.Zero(t, lc.pending(), "the batch's timer took it to close")
}

type countingCloser struct{ n int }

func (c *countingCloser) Close() error { c.n++; return nil }

func fcntl(fd, cmd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
