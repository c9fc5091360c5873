//go:build linux

package proxy

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/evloop"
)

// A parked client keeps only its socket's descriptor. Its net.Conn costs more than the
// rest of an idle client together: the netFD, its two addresses, and the runtime's poll
// descriptor with its two deadline timers (which the runtime never hands back to the OS,
// so their count is the peak of open net.Conns). Parking duplicates the descriptor,
// closes the net.Conn (the socket lives on under the duplicate) and waits on the
// duplicate; resume puts the descriptor back in the runtime's poller under an *os.File
// (resumedConn). A client that listens (notifications are written to it while it is
// parked) keeps its net.Conn.
//
// Who owns what: s.nc and s.rawFD are written by the session's goroutine (or the one
// that resumes it) under s.ncMu; other goroutines read them under s.ncMu only
// (closeAndWake, writeOut, remote, localAddr). While detached, s.nc is detachedConn:
// every use of it fails as on a closed connection.

// detachLocked parks the idle session without its net.Conn (a resumed one with its
// resumedConn, see above) and reports whether it did; when it cannot duplicate the
// descriptor it parks the net.Conn's socket as it is. s.ncMu is held.
func (s *Session) detachLocked() bool {
	fd := s.fd
	if c, ok := s.nc.(*loginConn); ok && c.rt.Load() == nil {
		// Served on the loop from its bare socket: its descriptor is bare already.
		fd = c.takeFD()
		if fd < 0 {
			return false // closed meanwhile: the caller ends the session
		}
		s.nc, s.rawFD = detachedConn{}, fd
	} else if _, resumed := s.nc.(resumedConn); !resumed {
		dup, err := dupCloexec(s.fd)
		if err != nil {
			return s.home().park(s, s.fd)
		}
		old := s.nc
		s.nc, s.rawFD, fd = detachedConn{}, dup, dup
		// The old number leaves the loop's set before it is closed (a client that waited
		// there for requests, then went to a goroutine, stays registered: leaveLoop):
		// closing it would not take the entry out, as the socket lives on under dup, and
		// the entry would go on reporting this socket's events under a number the next
		// socket takes.
		if p := s.home(); p != nil && p.ev.Holds(s.fd) {
			p.forget(s.fd)
		}
		_ = old.Close() // the socket stays open: dup refers to it too
	}
	// The reader is the session goroutine's alone (nothing is buffered: park checked):
	// it goes, and resume makes another (a pool would keep it in memory until the second
	// garbage collection, which an idle process may not run for minutes).
	s.maxMsg = int32(s.rd.MaxMessage)
	s.rd = nil
	// So does the writer: it holds nothing (parkSocketLocked checked), and the caller
	// holds s.wmu as well as s.ncMu, the locks under which other goroutines use it. What
	// they write to a parked client goes to its descriptor (tell: writeRawLocked); resume
	// makes a writer again (ownWriter). A listening client, which is written to while
	// parked, is not detached.
	s.wr = nil
	if s.home().park(s, fd) {
		return true
	}
	s.reattachLocked()
	return false
}

// reattach gives a session that was parked detached its net.Conn back; it runs first
// when a parked session resumes. A session closed while detached (closeAndWake) keeps
// detachedConn, so its next read fails and it ends. It takes s.wmu, then s.ncMu: the
// writer it makes is set under both (detachLocked).
func (s *Session) reattach() {
	s.wmu.Lock()
	defer s.unlockW()
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	s.reattachLocked()
}

// reattachLocked is reattach with s.wmu and s.ncMu held.
func (s *Session) reattachLocked() {
	if s.rawClient() {
		// Served on the loop from its bare socket and resumed without a park
		// (client_idle_timeout, a close): its net.Conn now; a closed one keeps failing
		// its reads, and the session ends.
		_ = s.toRuntimeConnLocked(true)
		return
	}
	if s.rd == nil {
		s.newReader(s.nc)
	}
	s.ownWriter(s.nc)
	fd := s.rawFD
	if fd < 0 {
		return
	}
	s.rawFD = -1
	s.home().forget(fd)
	nc, err := resume(fd)
	if err != nil {
		_ = syscall.Close(int(fd))
		s.log().Warn("cannot resume a parked client's connection", zap.Error(err))
		return
	}
	s.srv.runtimeConns.Add(1)
	s.nc, s.fd = nc, fd
	s.rd.Reset(nc)
	s.wr.Reset(nc)
}

// ownWriter gives a session that parked without its writer (detachLocked) a new one over
// nc; s.wmu and s.ncMu are held.
func (s *Session) ownWriter(nc net.Conn) {
	if s.wr == nil {
		s.wr = wire.NewWriter(nc)
	}
}

// resumeOnLoop serves a parked client's request on the loop its socket woke, as it serves
// the first request of a client that logged in there, instead of resuming the session on
// a goroutine of its own (resume): the detached descriptor becomes the bare socket such a
// client holds (loginConn, logged in), and serveLoop reads it, gives it its net.Conn and
// dispatches. A crowd of parked clients coming back at once (pgbench's 5,000, logged in
// one after the other and idle until the last was in, then all sending) made a goroutine
// each, its stack grown to a login's, most of them waiting in the pool's queue, where the
// loop queues a request with no goroutine. It reports false, changing nothing, for a
// client the loop does not serve; resume takes it then. It runs on the loop, which took
// the session out of its set: the session's goroutine until it parks again. The caller
// then serves the client (serveLoop).
func (s *Session) resumeOnLoop(p *parker, fd int32) bool {
	if s.isAdmin() || s.kind.replication() || s.expired.Load() || s.linkedServer() != nil || !s.loopOK() {
		return false
	}
	if !s.bareOnLoop(p, fd) {
		return false
	}
	s.ensureWork() // (not under s.ncMu: s.mu is never taken under it)
	return true
}

// bareOnLoop is resumeOnLoop's part under s.ncMu: the detached descriptor fd becomes the
// session's bare socket, edge-triggered in p's set and placed there as served now.
func (s *Session) bareOnLoop(p *parker, fd int32) bool {
	if !s.wmu.TryLock() { // its writer is made under it (ownWriter); resume waits for it
		return false
	}
	defer s.unlockW()
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if s.ncEnd&ncClosed != 0 || s.rawFD != fd || s.rd != nil {
		return false // closed meanwhile (resume ends it), or parked with its net.Conn
	}
	// Registered edge-triggered first: what arrives from here on raises an event, and the
	// bytes already there one more, which finds them read (serveLoop reads until EAGAIN).
	if err := p.ev.Register(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|evloop.ET); err != nil {
		return false
	}
	c := &loginConn{s: s, loggedIn: true}
	c.fd.Store(fd)
	s.nc, s.fd, s.rawFD = c, fd, -1
	s.newReader(c)
	s.ownWriter(c)
	s.wr.Reset(c)
	p.mu.Lock()
	p.placeLocked(s, fd)
	s.onLoop = loopBusy // as Event marks a loop-parked client it serves
	p.mu.Unlock()
	return true
}

// newReader gives a session that parked without its reader (detachLocked) a new one over
// nc, with the message limit it had.
func (s *Session) newReader(nc net.Conn) {
	s.rd = wire.NewReader(nc)
	s.rd.MaxMessage = int(s.maxMsg)
	if s.sessionWork != nil { // (a fresh one, made at resume, has no memo)
		// Another reader's message count: the memos' keys mean nothing, and the count at
		// the client's last Sync is this reader's start (it parked between requests).
		s.scan = scanMemo{}
		s.forgetFields()
		s.unnamed.syncedAt(0)
	}
}

// closeRawLocked closes a detached session's descriptor; s.ncMu is held and the session
// is out of the parker.
func (s *Session) closeRawLocked() bool {
	if s.rawFD < 0 {
		return false
	}
	_ = syscall.Close(int(s.rawFD))
	s.rawFD = -1
	return true
}

// departing reports whether what a parked client's socket fd holds is its departure: the
// end of the stream (or a reset), or a Terminate and nothing after it. It peeks, taking
// nothing; the loop asks it only when the event says the peer closed its side
// (goneEvents), so a client coming back with a request pays no extra system call.
func departing(fd int32) bool {
	var b [wire.HeaderLen + 1]byte
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])),
			uintptr(len(b)), syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			return true // reset: nothing will be read from it
		}
		return n == 0 || n == wire.HeaderLen && b == [wire.HeaderLen + 1]byte{'X', 0, 0, 0, 4}
	}
}

// departed is departing for s's parked socket fd, which the loop has just taken out of
// its set. Between the two, another goroutine may have closed the session (closeAndWake,
// which then found it parked no more): the number may be another client's socket now,
// not to be read, and the session's resume ends it. s.ncMu keeps the socket open while
// it is peeked at.
func (s *Session) departed(fd int32) bool {
	if testHookDeparting != nil {
		testHookDeparting()
	}
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	return s.ncEnd&ncClosed == 0 && departing(fd)
}

// testHookDeparting, set by a test, runs as departed begins.
var testHookDeparting func()

// endDeparted ends a parked session whose client has left (departing): its socket is
// closed as it is, with no net.Conn made to read a Terminate (resume's path, which cost
// each departure of a pool's idle connections a fcntl, two epoll_ctl and a file).
func (s *Session) endDeparted() {
	s.ncMu.Lock()
	s.closeClientLocked()
	s.ncMu.Unlock()
	s.ensureWork()
	s.clientGone()
	s.retire()
	s.end(nil)
}

// writeRawLocked writes b to a detached session's socket without blocking (what the
// socket buffer takes: a FATAL on its way out); s.ncMu is held.
func (s *Session) writeRawLocked(b []byte) bool {
	if s.rawFD < 0 {
		return false
	}
	for len(b) > 0 {
		n, err := syscall.Write(int(s.rawFD), b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		b = b[n:]
	}
	return true
}

// rawAddrLocked is the address of a detached session's socket: its peer's, or its own
// (local); nil when not detached. s.ncMu is held.
func (s *Session) rawAddrLocked(local bool) net.Addr {
	if s.rawFD < 0 {
		return nil
	}
	return sockAddr(int(s.rawFD), local)
}

// sockAddr is the address of socket fd: its peer's, or its own (local); detachedAddr{}
// when the socket cannot tell.
func sockAddr(fd int, local bool) net.Addr {
	var sa syscall.Sockaddr
	var err error
	if local {
		sa, err = syscall.Getsockname(fd)
	} else {
		sa, err = syscall.Getpeername(fd)
	}
	if err != nil {
		return detachedAddr{}
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *syscall.SockaddrInet6:
		zone := ""
		if a.ZoneId != 0 {
			zone = strconv.FormatUint(uint64(a.ZoneId), 10)
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port, Zone: zone}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return detachedAddr{}
}

// dupCloexec duplicates fd, close-on-exec. fcntl never sleeps, so it skips the runtime's
// blocking-syscall entry (RawSyscall), as the wire package's socket reads and writes do:
// every such entry in a login storm is a chance for the runtime to start an OS thread.
func dupCloexec(fd int32) (int32, error) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int32(r), nil
	}
}

// resumedConn is a parked client's socket once it has resumed: its descriptor under an
// *os.File, which puts it in the runtime's poller as net.Conn's would be (the wire
// package reads and writes it by the descriptor, wire.Socket). os.NewFile takes two
// system calls (fcntl, epoll_ctl); net.FileConn, which resume used before, took about a
// dozen more on each resume: another dup, fcntl, getsockopt, getsockname, getpeername,
// TCP_NODELAY and the four keepalive options again (the socket already has them: set on
// accept, or inherited from the listener), a close. The addresses are asked of the socket
// when wanted (SHOW CLIENTS, logs), not kept.
type resumedConn struct{ f *os.File }

// resume makes fd, a parked client's descriptor, a connection in the runtime's poller.
// fd stays the connection's own: closing the connection closes it. It fails only for a
// negative fd, and then owns nothing: the callers close fd when it fails, and an
// *os.File made here and closed on a failure would have closed it a first time.
func resume(fd int32) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	if f == nil {
		return nil, syscall.EBADF
	}
	return resumedConn{f}, nil
}

func (c resumedConn) Read(b []byte) (int, error)         { return c.f.Read(b) }
func (c resumedConn) Write(b []byte) (int, error)        { return c.f.Write(b) }
func (c resumedConn) Close() error                       { return c.f.Close() }
func (c resumedConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c resumedConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c resumedConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
func (c resumedConn) LocalAddr() net.Addr                { return c.addr(true) }
func (c resumedConn) RemoteAddr() net.Addr               { return c.addr(false) }

// SyscallConn gives the descriptor to the wire package and the socket checks.
func (c resumedConn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }

// PollableSocket marks the connection for the wire package's descriptor path.
func (resumedConn) PollableSocket() {}

func (c resumedConn) addr(local bool) net.Addr {
	a := net.Addr(detachedAddr{})
	if rc, err := c.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { a = sockAddr(int(fd), local) })
	}
	return a
}
