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
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(fd), events: pollIn | pollRdHup}
	var ts syscall.Timespec
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 || n == 0 {
			return false
		}
		return pfd.revents&(pollRdHup|pollHup|pollErr) != 0
	}
}
