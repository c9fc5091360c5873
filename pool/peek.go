package pool

import (
	"errors"
	"syscall"
	"time"

	"github.com/pgmux/pgmux/protocol/wire"
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
	var b [1]byte
	n, perr := 0, error(nil)
	tls, err := wire.ControlSocket(c.nc, func(fd int) {
		n, _, perr = syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	switch {
	case errors.Is(err, wire.ErrNoSocket):
		return false
	case err != nil:
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
