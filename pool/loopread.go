package pool

import (
	"errors"
	"sync/atomic"
	"syscall"

	"github.com/pgmux/pgmux/protocol/wire"
)

// An event loop may read a connection instead of its reader goroutine (package proxy's
// client loop): the lessee's Pump, on the reader goroutine, calls LoopPark, which hands
// reading to the loop, and the reader goroutine ends (Pump returns ErrLoopReads); the
// loop starts a new one when it hands reading back (HandBack). So a connection the loop
// reads has no goroutine. While the connection is the loop's it stays so across leases:
// the loop relays its answers and sees its events when idle (an unsolicited message or
// the end of the stream goes back to a reader goroutine, which deals with it as always).
// What needs the reader from outside the loop — a lease to a lessee that is not a
// LoopLessee, an internal query (check, reset), a close — asks the loop (Recall).

// With several loops, one reads a connection at a time (LoopOf): the loop of the lessee
// whose Pump parked it, whoever leases it afterwards, until it is handed back; only that
// loop hands it back, so one loop at a time touches c.Rd.

// LoopLessee marks a lessee whose Pump an event loop may do instead of the reader.
type LoopLessee interface {
	Lessee
	LoopPumped()
}

// Looper is the event loop a connection's reading is handed to. Both methods only post
// to the loop: they must not block or call into the pool.
type Looper interface {
	Adopt(c *Conn)  // read c from now on
	Recall(c *Conn) // hand c back to its reader goroutine (HandBack) when you can
}

// LoopHome names a loop to connections: each loop makes its own once, so that handing a
// connection to a loop stores a pointer and allocates nothing.
type LoopHome struct{ Looper Looper }

// loopRead is a connection's hand-over between its reader goroutine and a loop. The
// loop alone hands reading back (HandBack), so it never touches Rd after the reader
// goroutine may have started to; anyone else asks it to (Recall).
type loopRead struct {
	on    atomic.Bool              // the loop reads the socket; c has no reader goroutine
	keep  atomic.Bool              // the current lease stays with the reader goroutine (KeepReader)
	loop  atomic.Pointer[LoopHome] // the loop that reads c, or last did; set before on (LoopPark)
	fd    int                      // the socket's descriptor; -1 when there is none to poll (TLS)
	rc    syscall.RawConn          // the socket's, when fd is not -1
	fdSet bool
}

// LoopFD is the descriptor an event loop polls for c, or -1 when it cannot read c
// (TLS, no socket).
func (c *Conn) LoopFD() int {
	lr := &c.lr
	if !lr.fdSet {
		lr.fd, lr.fdSet = -1, true
		if rc, tls, err := wire.RawSocket(c.nc); err == nil && !tls {
			if rc.Control(func(fd uintptr) { lr.fd = int(fd) }) == nil {
				lr.rc = rc
			}
		}
	}
	return lr.fd
}

// OnFD runs f with c's descriptor held open (RawConn.Control), so that a concurrent
// close cannot hand its number to another socket meanwhile; false (f not run) when c has
// none to poll or is closed. f should be made once, not at each call: a closure made
// per call is an allocation.
func (c *Conn) OnFD(f func(fd uintptr)) bool {
	if c.LoopFD() < 0 {
		return false
	}
	return c.lr.rc.Control(f) == nil
}

// ErrLoopReads is what a lessee's Pump returns after LoopPark handed c to a loop: the
// reader goroutine ends without touching c again, and the loop starts another when it
// hands reading back (HandBack).
var ErrLoopReads = errors.New("read by an event loop")

// LoopPark is called by the lessee's Pump on the reader goroutine: l reads c from now on
// (Adopt). When it returns true the Pump must return ErrLoopReads at once, touching
// neither c nor its reader: the loop may already read it, or have handed it back to a
// new reader goroutine. It returns false, adopting nothing, when the lease was handed
// back to the reader (KeepReader) or c has no descriptor to poll.
func (c *Conn) LoopPark(l *LoopHome) bool {
	if c.lr.keep.Load() || c.LoopFD() < 0 || c.closing.Load() {
		return false
	}
	c.lr.loop.Store(l)
	c.lr.on.Store(true)
	l.Looper.Adopt(c)
	return true
}

// InLoop reports whether a loop reads c.
func (c *Conn) InLoop() bool { return c.lr.on.Load() }

// Recall asks the loop reading c, if one is, to hand it back to its reader goroutine;
// any goroutine. It does not wait.
func (c *Conn) Recall() {
	if c.lr.on.Load() {
		c.LoopOf().Looper.Recall(c)
	}
}

// LoopOf is the loop that reads c or last did (nil if none ever has); any goroutine. A
// loop that finds itself there reads c while InLoop.
func (c *Conn) LoopOf() *LoopHome { return c.lr.loop.Load() }

// HandBack gives reading back to a reader goroutine, which it starts; for the loop only,
// once it no longer touches c.Rd. Nothing when a reader reads already.
func (c *Conn) HandBack() {
	if c.lr.on.CompareAndSwap(true, false) {
		go c.run()
	}
}

// KeepReader is HandBack for the rest of the current lease: the reader goroutine
// relays it (a long answer, a client that does not read) and does not hand it to the
// loop again before the lease ends. For the loop only.
func (c *Conn) KeepReader() {
	c.lr.keep.Store(true)
	c.HandBack()
}
