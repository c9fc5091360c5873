package pool

import (
	"sync/atomic"

	"github.com/pgmux/pgmux/protocol/wire"
)

// An event loop may read a connection instead of its reader goroutine (package proxy's
// client loop): the lessee's Pump, on the reader goroutine, calls LoopPark, which hands
// reading to the loop and puts the reader goroutine to sleep until ToReader. While the
// connection is the loop's it stays so across leases: the loop relays its answers and
// sees its events when idle (an unsolicited message or the end of the stream hands it
// back to the reader goroutine, which deals with it as always). Anything the loop cannot
// do without blocking goes back the same way: a lease to a lessee that is not a
// LoopLessee, an internal query (check, reset), a close.

// LoopLessee marks a lessee whose Pump an event loop may do instead of the reader.
type LoopLessee interface {
	Lessee
	LoopPumped()
}

// loopRead is a connection's hand-over between its reader goroutine and a loop.
type loopRead struct {
	on    atomic.Bool   // the loop reads the socket; the reader goroutine sleeps
	keep  atomic.Bool   // the current lease stays with the reader goroutine (KeepReader)
	wake  chan struct{} // ToReader's signal, buffered
	fd    int           // the socket's descriptor; -1 when there is none to poll (TLS)
	fdSet bool
}

// LoopFD is the descriptor an event loop polls for c, or -1 when it cannot read c
// (TLS, no socket).
func (c *Conn) LoopFD() int {
	lr := &c.lr
	if !lr.fdSet {
		lr.fd, lr.fdSet = -1, true
		if rc, tls, err := wire.RawSocket(c.nc); err == nil && !tls {
			_ = rc.Control(func(fd uintptr) { lr.fd = int(fd) })
		}
	}
	return lr.fd
}

// LoopPark is called by the lessee's Pump on the reader goroutine: adopt tells the loop
// to read c from now on (it must not block), and the reader goroutine sleeps until
// ToReader. It returns false at once, adopting nothing, when the lease was handed back to
// the reader (KeepReader) or c has no descriptor to poll.
func (c *Conn) LoopPark(adopt func()) bool {
	if c.lr.keep.Load() || c.LoopFD() < 0 || c.closing.Load() {
		return false
	}
	if c.lr.wake == nil {
		c.lr.wake = make(chan struct{}, 1)
	}
	c.lr.on.Store(true)
	adopt()
	<-c.lr.wake
	return true
}

// InLoop reports whether a loop reads c.
func (c *Conn) InLoop() bool { return c.lr.on.Load() }

// ToReader hands reading back to c's reader goroutine; nothing when it reads already.
func (c *Conn) ToReader() {
	if c.lr.on.CompareAndSwap(true, false) {
		c.lr.wake <- struct{}{}
	}
}

// KeepReader is ToReader for the rest of the current lease: the reader goroutine
// relays it (a long answer, a lessee's state the loop does not handle) and does not
// hand it to the loop again before the lease ends.
func (c *Conn) KeepReader() {
	c.lr.keep.Store(true)
	c.ToReader()
}
