package pool

import (
	"syscall"
	"unsafe"
)

// peekByte is recv(2) of one byte with MSG_PEEK|MSG_DONTWAIT: it never blocks, so it is
// a RawSyscall, off the runtime's blocking-syscall entry. That entry wakes the runtime's
// monitor thread (sysmon) when every P was idle, and sysmon then polls every 20 µs for a
// while: for an application's pooled clients, whose every request finds its server idle
// past peekAfter, that was a wake-up and tens of sysmon cycles per transaction.
func peekByte(fd int, b *[1]byte) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
