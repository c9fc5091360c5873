//go:build linux

package proxy

import (
	"syscall"
	"unsafe"
)

const (
	pollIn    = 0x1
	pollErr   = 0x8
	pollHup   = 0x10
	pollRdHup = 0x2000
)

// fdPeerClosed polls fd without waiting: POLLRDHUP is set once the peer's FIN has
// arrived, even with data still unread before it; POLLHUP and POLLERR after a reset.
// With a zero timeout ppoll never sleeps: a RawSyscall, off the runtime's blocking-syscall
// path (TestLoginStaysOffTheBlockingSyscallPath).
func fdPeerClosed(fd int) bool {
	pfd := [1]pollFd{{fd: int32(fd), events: pollIn | pollRdHup}}
	return ppollNow(pfd[:]) && pfd[0].gone()
}

// pollFd is the kernel's struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

func (p *pollFd) gone() bool { return p.revents&(pollRdHup|pollHup|pollErr) != 0 }

// ppollNow polls fds without waiting and reports whether any has events.
func ppollNow(fds []pollFd) bool {
	var ts syscall.Timespec
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		return errno == 0 && n > 0
	}
}

// pollBatch is how many descriptors one ppoll takes at most (the kernel refuses more
// than RLIMIT_NOFILE).
const pollBatch = 1024

// peersClosed is fdPeerClosed for every descriptor of fds, into gone (as long as fds),
// with one system call per pollBatch of them. A descriptor that is not open (POLLNVAL)
// is not reported.
func peersClosed(fds []int32, gone []bool) {
	pfds := make([]pollFd, min(len(fds), pollBatch))
	for start := 0; start < len(fds); start += pollBatch {
		chunk := fds[start:min(start+pollBatch, len(fds))]
		p := pfds[:len(chunk)]
		for i, fd := range chunk {
			p[i] = pollFd{fd: fd, events: pollIn | pollRdHup}
		}
		if !ppollNow(p) {
			continue
		}
		for i := range p {
			gone[start+i] = p[i].gone()
		}
	}
}
