package proxy

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
)

// A client that leaves while its request waits for a server: the request is dropped,
// never sent, and the session ends, as PgBouncer drops a waiting client that
// disconnects. Otherwise a server freed later would run a query nobody reads, and an
// autocommit INSERT of a client that gave up would commit.
//
// The rule: a request not yet sent to any server is dropped when the client's socket
// shows that the peer closed its side (FIN or reset: POLLRDHUP, POLLHUP, POLLERR on
// Linux), whatever bytes it still holds unread behind the request (a pipelined
// Terminate: nobody reads the answer either). That is the test PostgreSQL's
// client_connection_check_interval applies to a query already running. A client that
// half-closes its socket to wait for the answer is not served (pgmux ends a session at
// the end of its client's stream in every state, as PgBouncer does). A request already
// sent runs to its end, as on a direct connection.
//
// Two places notice it: the idle sweep (every second) and the console's and metrics'
// snapshots look at each waiting client's socket (dropGoneWaiters), take a departed
// one out of its pool's queue (pool.Abandon) and stop counting it as waiting (SHOW
// POOLS cl_waiting, SHOW CLIENTS); and a lease that had to wait looks once more before
// anything is sent (leftWhileWaiting), so a client that left just before its server
// came is caught too. A request that waited on the client loop asks the loop instead
// (leftWhileQueued): it has seen every edge of the socket since the request was read,
// so the common case costs no system call.

// errLeftWaiting ends a session whose client left while its request waited for a server.
var errLeftWaiting = errors.New("client disconnected while waiting for a server connection")

// leftWhileWaiting reports whether the client's socket is closed by its peer; called by
// the session goroutine, which owns nc (and s.fd, its plain socket's descriptor, while
// it runs). At 500 clients on a pool of 20 nearly every lease waits, so the common case
// is one ppoll on s.fd and nothing else (no SyscallConn, which allocates).
func (s *Session) leftWhileWaiting() bool {
	if s.fd >= 0 && !s.tls {
		return fdPeerClosed(int(s.fd))
	}
	return s.nc != nil && peerClosed(s.nc)
}

// dropGoneWaiters ends the wait of every queued client whose socket its peer has closed.
// sessions is the server's list of them (Sessions). The sockets of the waiting clients
// are polled together, in one system call (peersClosed): at 5,000 clients on a pool of
// 20 nearly all of them wait at every sweep, and a call (and a SyscallConn, which
// allocates) per client cost more than a system call per transaction. A descriptor is
// read under the session's ncMu but polled after it is let go, so it may have been
// closed and reused meanwhile: a client found gone is looked at again through its
// net.Conn under ncMu (peerClosedShared) before it is dropped; one missed is found by
// the next sweep, or by its lease (leftWhileWaiting).
func (s *Server) dropGoneWaiters(sessions []*Session) {
	var waiting []*Session
	var fds []int32
	for _, sess := range sessions {
		sess.mu.Lock()
		w := sess.state == ClientWaiting && sess.entry != nil && !sess.loopWait
		sess.mu.Unlock()
		if !w {
			continue
		}
		fd := sess.pollFD()
		if fd < 0 {
			if sess.peerClosedShared() { // TLS: the socket under it, through the net.Conn
				sess.abandonWait()
			}
			continue
		}
		waiting, fds = append(waiting, sess), append(fds, fd)
	}
	if len(fds) == 0 {
		return
	}
	polledWaiters.Add(uint64(len(fds)))
	gone := make([]bool, len(fds))
	peersClosed(fds, gone)
	for i, sess := range waiting {
		if gone[i] && sess.peerClosedShared() {
			sess.abandonWait()
		}
	}
}

// polledWaiters counts the sockets dropGoneWaiters has polled (tests).
var polledWaiters atomic.Uint64

// pollFD is the descriptor of a waiting client's plain socket, or -1 (TLS, closed); read
// under ncMu by another goroutine than the session's.
func (s *Session) pollFD() int32 {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if s.tls || s.ncEnd&ncClosed != 0 || s.rawFD >= 0 || s.nc == nil {
		return -1
	}
	return s.fd
}

// abandonWait takes a waiting client whose peer has left out of its pool's queue and
// stops counting it as waiting.
func (s *Session) abandonWait() {
	s.mu.Lock()
	if s.state != ClientWaiting {
		s.mu.Unlock()
		return
	}
	s.state = ClientClosed // no longer counted as waiting (waitingLocked)
	s.mu.Unlock()
	s.entry.pool.Abandon(s)
}

// peerClosedShared is leftWhileWaiting for another goroutine than the session's.
func (s *Session) peerClosedShared() bool {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	return s.nc != nil && s.ncEnd&ncClosed == 0 && peerClosed(s.nc)
}

// peerClosed reports whether nc's peer has closed its side or reset the connection; one
// non-blocking system call that consumes nothing.
func peerClosed(nc net.Conn) bool {
	gone := false
	_, err := wire.ControlSocket(nc, func(fd int) { gone = fdPeerClosed(fd) })
	switch {
	case errors.Is(err, wire.ErrNoSocket):
		return false
	case err != nil:
		return true // closed under us
	}
	return gone
}

// abandoned reports whether err means the session gave up waiting because its client left.
func abandoned(err error) bool {
	return errors.Is(err, errLeftWaiting) || errors.Is(err, pool.ErrAbandoned)
}
