package pool

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// peekAfter is how long a connection must have sat idle before a lease looks at its
// socket first (idleBroken). A connection handed on within that time costs no system
// call; one idle longer is the one a server may have ended meanwhile (a terminated
// backend, a shutdown) while its reader has not run yet.
var peekAfter = time.Millisecond

// idleBroken reports whether c's server has already ended the connection, ahead of c's
// reader goroutine: the socket holds an ErrorResponse (a server only sends one to an idle
// connection when it ends it: 57P01 and the like) or the end of the stream. One recv
// with MSG_PEEK|MSG_DONTWAIT, which consumes nothing: the reader still reads the error
// and removes the connection with the server's own reason. Over TLS only the end of the
// stream can be seen.
func (c *Conn) idleBroken() bool {
	if time.Since(c.LastUsed()) < peekAfter {
		return false
	}
	nc, tls := c.nc, false
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc, tls = u.NetConn(), true
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	n, perr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return true // closed under us
	}
	switch {
	case perr != nil:
		return !errors.Is(perr, syscall.EAGAIN) && !errors.Is(perr, syscall.EINTR)
	case n == 0:
		return true // end of stream
	default:
		return !tls && b[0] == 'E'
	}
}
