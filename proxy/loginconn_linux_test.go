//go:build linux

package proxy

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// bareSession is a logged-in client served from its bare socket (loginConn), as a client
// loop serves one: a non-blocking socket pair, pgmux's end in the loginConn, the client's
// end returned (nobody reads it unless the test does).
func bareSession(t *testing.T) (*Session, *loginConn, *os.File) {
	t.Helper()
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	peer := os.NewFile(uintptr(pair[1]), "client")
	srv := &Server{log: zap.NewNop()}
	srv.metrics = metrics.New(metricsView{srv}) // a FATAL told is counted
	c := &loginConn{loggedIn: true}
	c.fd.Store(int32(pair[0]))
	s := newSession(srv, c, 1)
	c.s = s
	t.Cleanup(func() { s.closeLoginFD() })
	t.Cleanup(func() { _ = peer.Close() }) // first: a write still waiting fails (EPIPE)
	return s, c, peer
}

// fillSocket writes to fd until its socket takes no more: a client that stopped reading.
func fillSocket(t *testing.T, fd int) {
	t.Helper()
	b := make([]byte, 64<<10)
	for {
		_, err := syscall.Write(fd, b)
		if err == syscall.EAGAIN {
			return
		}
		require.NoError(t, err)
	}
}

// TestKillTellsBareClientWithinItsWait: a client served from its bare socket whose writer
// holds bytes its full socket did not take (the loop's TryFlush left them, relayBatch)
// is told its FATAL by killAll within killTellWait, as one with a net.Conn is: tell's
// write deadline holds for the net.Conn the socket moves to when the write must wait
// (loginConn.backed). It was dropped: set on the bare socket it did nothing, and the
// teller waited for the client to read, holding s.wmu and s.ncMu, and killAll with it.
func TestKillTellsBareClientWithinItsWait(t *testing.T) {
	s, c, _ := bareSession(t)
	fillSocket(t, int(c.descriptor()))
	require.NoError(t, s.wr.Write(make([]byte, 4<<10))) // what TryFlush left
	require.Greater(t, s.wr.Buffered(), 0)
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		killAll([]*Session{s}, func(*Session) *pgerr.Error {
			return pgerr.Fatal(pgerr.AdminShutdown, "database app was killed by an administrator (KILL)")
		})
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		t.Logf("killAll took %v", took)
	case <-time.After(5 * time.Second):
		// (Closing the socket pair at cleanup ends the teller's write.)
		t.Fatal("killAll still waits for a bare client that does not read after 5 s (killTellWait is 50 ms)")
	}
}

// TestBareSocketCloseWaitsForItsUse: a read or write made through a bare client's
// RawConn holds its descriptor, as an *os.File's does (the contract wire.Reader.ReadNow
// and the Writer rely on): closeFD, the session's end, does not close(2) the number under
// it. A client served from its bare socket is written to by goroutines other than its
// owner (a server read by another loop, relayBatch; a Pump goroutine), while its owner
// may end it; a number closed under such a write is the next socket's, and the write
// lands there.
func TestBareSocketCloseWaitsForItsUse(t *testing.T) {
	_, c, _ := bareSession(t)
	var before syscall.Stat_t
	require.NoError(t, syscall.Fstat(int(c.descriptor()), &before))
	in, closed := make(chan struct{}), make(chan struct{})
	var after syscall.Stat_t
	var afterErr error
	used := make(chan struct{})
	go func() {
		defer close(used)
		_ = c.raw.Control(func(fd uintptr) {
			close(in)
			select { // closeFD returns meanwhile only if it did not wait for this use
			case <-closed:
			case <-time.After(200 * time.Millisecond):
			}
			afterErr = syscall.Fstat(int(fd), &after)
		})
	}()
	<-in
	go func() {
		c.closeFD()
		close(closed)
	}()
	<-used
	<-closed
	require.NoError(t, afterErr, "the descriptor was closed while a write held it")
	require.Equal(t, before.Ino, after.Ino, "the descriptor is another socket's")
}

// TestBareSocketUseFollowsItsMove: a read of a bare client's socket made while another
// goroutine moves the socket to its net.Conn (backed: a Pump's or another loop's write
// that found the socket full) goes through the net.Conn, not fails as on a closed socket
// (the loop would end the client: endOnLoop).
func TestBareSocketUseFollowsItsMove(t *testing.T) {
	const trials = 500
	failed := 0
	for range trials {
		_, c, _ := bareSession(t)
		start, stop := make(chan struct{}), make(chan struct{})
		errs := make(chan error, 1)
		go func() {
			var err error
			close(start)
			for err == nil {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				err = c.raw.Control(func(uintptr) {})
			}
			errs <- err
		}()
		<-start
		_, err := c.backed(true)
		require.NoError(t, err)
		close(stop)
		if err := <-errs; err != nil {
			failed++
		}
		c.closeFD()
	}
	require.Zero(t, failed, "reads failed while the socket moved to its net.Conn, of %d", trials)
}
