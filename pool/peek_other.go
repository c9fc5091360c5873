//go:build !linux

package pool

import "syscall"

// peekByte is recv(2) of one byte with MSG_PEEK|MSG_DONTWAIT.
func peekByte(fd int, b *[1]byte) (int, error) {
	n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
