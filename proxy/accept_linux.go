//go:build linux

package proxy

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Clients of a TCP or unix-socket listener are accepted with raw system calls, not the
// listener's Accept. Go's Accept makes accept4(2) (and for TCP a setsockopt(2) for
// TCP_NODELAY) through the runtime's blocking-syscall entry, and each such entry wakes the
// runtime's monitor thread (sysmon) from its deep sleep when the process had gone idle,
// which then polls every 20 µs for as long as the process is busy: in a login storm, or
// clients that connect for each transaction, that was a sixth of pgmux's CPU
// (bench/README.md). accept4 and setsockopt never sleep on a non-blocking listener, so
// they are made directly (RawSyscall), the listener's readiness waited for in the
// runtime's poller, and the socket made a connection in that poller through an *os.File,
// as a parked client's is when it resumes (resume: fcntl and epoll_ctl by the runtime, no
// blocking entry either), or handed to a client loop bare (acceptFD, loginloop_linux.go).

// socketListener is a listener over a socket of its own: *net.TCPListener or
// *net.UnixListener.
type socketListener interface {
	net.Listener
	SyscallConn() (syscall.RawConn, error)
}

// rawListener is a TCP or unix-socket listener whose Accept works as above. The runtime
// waits for the listening socket through f, a duplicate of its descriptor (a listener's
// own RawConn cannot wait); Close closes both (and a unix listener's removes its file).
type rawListener struct {
	socketListener
	f   *os.File
	rc  syscall.RawConn
	tcp bool // its clients get TCP_NODELAY
	acc *acceptor
}

// acceptor is acceptFD's state: the accept4 attempt that rc.Read calls, bound once with
// its results as fields. A closure per call, with the results captured, would put two
// heap allocations on every login. mu keeps concurrent Accepts (one goroutine accepts
// each listener; a test may call Accept itself) from sharing the fields.
type acceptor struct {
	mu    sync.Mutex
	try   func(uintptr) bool // tryAccept's method value
	fd    int
	errno syscall.Errno
	// lendMu guards the listener's loan to a client loop (acceptloop_linux.go): lent
	// and to while the loop accepts on it, closed once Close began.
	lendMu sync.Mutex
	lent   *loopAcceptor
	to     *parker
	closed bool
}

// tryAccept accepts one client on the listening socket lfd, non-blocking; false when
// none is waiting (rc.Read then waits for one).
func (a *acceptor) tryAccept(lfd uintptr) bool {
	r, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, lfd, 0, 0,
		syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
	if e == syscall.EAGAIN {
		return false
	}
	a.fd, a.errno = int(r), e
	return true
}

// rawAccepting wraps a TCP or unix-socket listener; any other, or one whose descriptor
// cannot be duplicated, is returned as it is.
func rawAccepting(ln net.Listener) net.Listener {
	var sl socketListener
	tcp := false
	switch l := ln.(type) {
	case *net.TCPListener:
		sl, tcp = l, true
	case *net.UnixListener:
		sl = l
	default:
		return ln
	}
	lrc, err := sl.SyscallConn()
	if err != nil {
		return ln
	}
	dup, derr := int32(-1), error(nil)
	if err := lrc.Control(func(fd uintptr) { dup, derr = dupCloexec(int32(fd)) }); err != nil || derr != nil {
		return ln
	}
	f := os.NewFile(uintptr(dup), "listener")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return ln
	}
	acc := &acceptor{}
	acc.try = acc.tryAccept
	return rawListener{sl, f, rc, tcp, acc}
}

// Close closes the listening socket (both descriptors), which ends a waiting Accept; a
// client loop accepting on it drops it first.
func (l rawListener) Close() error {
	l.acc.recall()
	_ = l.f.Close()
	return l.socketListener.Close()
}

// Accept waits for the next client and returns its connection (an acceptedConn).
func (l rawListener) Accept() (net.Conn, error) {
	fd, err := l.acceptFD()
	if err != nil {
		return nil, err
	}
	c, err := accepted(int32(fd))
	if err != nil {
		_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
		return nil, err
	}
	return c, nil
}

// accepted makes fd, a new client's socket, its connection in the runtime's poller: an
// acceptedConn, which parking detaches (detach_linux.go), so an idle client keeps no
// *os.File or poll descriptor. fd is the connection's own from then on.
func accepted(fd int32) (net.Conn, error) {
	c, err := resume(fd)
	if err != nil {
		return nil, err
	}
	return acceptedConn{c.(resumedConn)}, nil
}

// acceptFD waits for the next client and returns its socket's descriptor, non-blocking
// (with TCP_NODELAY set, for TCP), in no poller yet: a client that logs in on a client loop
// (loginloop_linux.go) is read there alone.
func (l rawListener) acceptFD() (int, error) {
	a := l.acc
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		a.fd, a.errno = -1, 0
		err := l.rc.Read(a.try)
		fd, errno := a.fd, a.errno
		if err != nil {
			if connClosed(err) { // f closed by Close: say it as net's Accept does
				err = net.ErrClosed
			}
			return -1, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
		}
		switch errno {
		case 0:
		case syscall.EINTR, syscall.ECONNABORTED:
			continue // a client that gave up before its turn (Go's Accept retries too)
		default:
			return -1, os.NewSyscallError("accept4", errno)
		}
		if l.tcp {
			noDelay(fd)
		}
		return fd, nil
	}
}

// noDelay sets TCP_NODELAY on a client's socket.
func noDelay(fd int) {
	one := int32(1)
	_, _, _ = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY,
		uintptr(unsafe.Pointer(&one)), 4, 0)
}

// acceptedConn is a client's connection as rawListener accepts it. It is a resumedConn
// but for parking: it is detached like a net.TCPConn (detach_linux.go), so an idle
// client keeps no *os.File.
type acceptedConn struct{ resumedConn }
