//go:build linux

package proxy

import (
	"net"
	"os"
	"strconv"
	"syscall"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/wire"
)

// A parked client keeps only its socket's descriptor. Its net.Conn costs more than the
// rest of an idle client together: the netFD, its two addresses, and the runtime's poll
// descriptor with its two deadline timers (which the runtime never hands back to the OS,
// so their count is the peak of open net.Conns). Parking duplicates the descriptor,
// closes the net.Conn (the socket lives on under the duplicate) and waits on the
// duplicate; resume makes a net.Conn of it again (net.FileConn). A client that listens
// (notifications are written to it while it is parked) keeps its net.Conn.
//
// Who owns what: s.nc and s.rawFD are written by the session's goroutine (or the one
// that resumes it) under s.ncMu; other goroutines read them under s.ncMu only
// (closeAndWake, writeOut, remote, localAddr). While detached, s.nc is detachedConn:
// every use of it fails as on a closed connection.

// detachLocked parks the idle session without its net.Conn and reports whether it did;
// when it cannot duplicate the descriptor it parks the net.Conn's socket as it is. s.ncMu
// is held.
func (s *Session) detachLocked() bool {
	fd, err := dupCloexec(s.fd)
	if err != nil {
		return s.srv.parker.park(s, s.fd)
	}
	old := s.nc
	s.nc, s.rawFD = detachedConn{}, fd
	// The reader is the session goroutine's alone (nothing is buffered: park checked):
	// it goes, and resume makes another (a pool would keep it in memory until the second
	// garbage collection, which an idle process may not run for minutes). The writer
	// stays, over detachedConn: other goroutines reach it under s.wmu.
	s.maxMsg = int32(s.rd.MaxMessage)
	s.rd = nil
	s.wr.Reset(s.nc)
	_ = old.Close() // the socket stays open: fd refers to it too
	if s.srv.parker.park(s, fd) {
		return true
	}
	s.reattachLocked()
	return false
}

// reattach gives a session that was parked detached its net.Conn back; it runs first
// when a parked session resumes. A session closed while detached (closeAndWake) keeps
// detachedConn, so its next read fails and it ends.
func (s *Session) reattach() {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	s.reattachLocked()
}

func (s *Session) reattachLocked() {
	if s.rd == nil {
		s.rd = wire.NewReader(s.nc)
		s.rd.MaxMessage = int(s.maxMsg)
		if s.sessionWork != nil { // (a fresh one, made at resume, has no memo)
			s.scan = scanMemo{} // another reader's message count: the memo's key means nothing
		}
	}
	fd := s.rawFD
	if fd < 0 {
		return
	}
	s.rawFD = -1
	s.srv.parker.forget(fd)
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f) // a duplicate of fd, in the runtime's poller
	_ = f.Close()
	if err != nil {
		s.log().Warn("cannot resume a parked client's connection", zap.Error(err))
		return
	}
	s.nc, s.fd = nc, socketFD(nc)
	s.rd.Reset(nc)
	s.wr.Reset(nc)
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
	var sa syscall.Sockaddr
	var err error
	if local {
		sa, err = syscall.Getsockname(int(s.rawFD))
	} else {
		sa, err = syscall.Getpeername(int(s.rawFD))
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
