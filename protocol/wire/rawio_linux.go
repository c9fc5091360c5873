//go:build linux && !race

package wire

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket, called from a
// RawConn callback (which holds the descriptor, so it cannot be closed and reused
// meanwhile). They bypass the runtime's syscall entry and exit: on a non-blocking socket
// the call never sleeps, so handing off the P is pure cost, and entering a syscall wakes
// the runtime's sysmon thread whenever it sleeps, which on a lightly loaded pooler
// happened for nearly every message (a futex wake and a context switch each).
//
// Under the race detector the ordinary calls are used (rawio_other.go): they carry the
// annotations that let it see a socket write and the peer's read as synchronisation.
func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
