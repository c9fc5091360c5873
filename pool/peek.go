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

// peeker is what idleBroken keeps on a connection so that a peek allocates nothing: the
// socket's raw access and the callback that reads into the fields, made at the first
// peek. Only the goroutine that took the connection off the idle list peeks, so the
// fields are that lease's.
type peeker struct {
	rc   syscall.RawConn
	tls  bool
	none bool // the connection has no descriptor to peek at
	fn   func(fd uintptr)
	b    [1]byte
	n    int
	err  error
}

// idleBroken reports whether c's server has already ended the connection, ahead of c's
// reader goroutine: the socket holds an ErrorResponse (a server only sends one to an idle
// connection when it ends it: 57P01 and the like) or the end of the stream. One recv
// with MSG_PEEK|MSG_DONTWAIT, which consumes nothing: the reader still reads the error
// and removes the connection with the server's own reason. Over TLS only the end of the
// stream can be seen. now is the caller's clock reading.
func (c *Conn) idleBroken(now time.Time) bool {
	if now.UnixNano()-c.lastUsed.Load() < int64(peekAfter) {
		return false
	}
	pk := &c.peek
	if pk.fn == nil && !pk.none {
		rc, tls, err := wire.RawSocket(c.nc)
		if err != nil {
			pk.none = true
		} else {
			pk.rc, pk.tls = rc, tls
			pk.fn = func(fd uintptr) {
				pk.n, pk.err = peekByte(int(fd), &pk.b)
			}
		}
	}
	if pk.none {
		return false
	}
	if err := pk.rc.Control(pk.fn); err != nil {
		return true // closed under us
	}
	switch {
	case pk.err != nil:
		return !errors.Is(pk.err, syscall.EAGAIN) && !errors.Is(pk.err, syscall.EINTR)
	case pk.n == 0:
		return true // end of stream
	default:
		return !pk.tls && pk.b[0] == 'E'
	}
}
