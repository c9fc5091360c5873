//go:build !linux

package proxy

import (
	"errors"
	"syscall"
)

// fdPeerClosed peeks at fd without waiting: without POLLRDHUP only the end of the stream
// with nothing unread before it, or a reset, can be seen.
func fdPeerClosed(fd int) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err != nil:
		return !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
	default:
		return n == 0
	}
}

// peersClosed is fdPeerClosed for every descriptor of fds, into gone (as long as fds).
func peersClosed(fds []int32, gone []bool) {
	for i, fd := range fds {
		gone[i] = fdPeerClosed(int(fd))
	}
}
