package wire

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// Writer batches outgoing bytes and writes them when Flush is called or the buffer fills.
// It holds a pooled buffer only while it has unflushed bytes. Over a plain socket it
// writes straight to the descriptor (see sysWrite), waiting on the runtime's poller only
// when the socket is full. The buffer and the raw write's state are one pooled object
// (writeOp), so a batch costs one pool round trip, not two.
type Writer struct {
	dst io.Writer
	raw syscall.RawConn // set for plain sockets
	op  *writeOp        // the unflushed batch, in op.buf[:n]; nil when there is none
	n   int
	// sent counts the times bytes left the buffer, or went past it (Mark, Rewind).
	sent uint64
}

// Mark is a point in what a Writer has been given (Writer.Mark).
type Mark struct {
	sent uint64
	n    int
}

// Mark returns the point Rewind goes back to.
func (w *Writer) Mark() Mark { return Mark{sent: w.sent, n: w.n} }

// Rewind drops what was written since m and reports whether it could: only while all of
// it is still buffered (no flush, no write past the buffer since m). A relay uses it to
// take back the start of a message whose end never came.
func (w *Writer) Rewind(m Mark) bool {
	if w.sent != m.sent || w.n < m.n {
		return false
	}
	w.n = m.n
	return true
}

// NewWriter returns a Writer over dst.
func NewWriter(dst io.Writer) *Writer {
	w := &Writer{}
	w.setDst(dst)
	return w
}

// Reset points the writer at a new destination, dropping unflushed bytes.
func (w *Writer) Reset(dst io.Writer) {
	w.setDst(dst)
	w.n = 0
	w.sent++
	w.release()
}

// Retarget makes dst the writer's destination from the next write on, keeping what is
// buffered: a connection that moves to another handle of the same socket (proxy's client
// that leaves its event loop for a goroutine with a net.Conn) sends what the old one left
// unsent, in order.
func (w *Writer) Retarget(dst io.Writer) { w.setDst(dst) }

func (w *Writer) setDst(dst io.Writer) {
	w.dst, w.raw = dst, nil
	if sc, ok := socket(dst); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
}

// socket returns src as a syscall.Conn when it is a network socket, which Go keeps
// non-blocking; other descriptors (files, pipes) may block and keep the ordinary path.
func socket(src any) (syscall.Conn, bool) {
	switch c := src.(type) {
	case *net.TCPConn:
		return c, true
	case *net.UnixConn:
		return c, true
	case Socket:
		return c, true
	}
	return nil, false
}

// Socket is a connection over a non-blocking socket in the runtime's poller that is not a
// *net.TCPConn or *net.UnixConn (pgmux's resumed clients, an *os.File underneath): Readers
// and Writers over it take the descriptor path too.
type Socket interface {
	syscall.Conn
	PollableSocket()
}

// Buffered reports the number of unflushed bytes.
func (w *Writer) Buffered() int { return w.n }

// Room reports how many bytes fit in the buffer before Write would flush it: a Write of
// fewer is a copy, whatever the destination does.
func (w *Writer) Room() int {
	if w.op == nil {
		return BufSize
	}
	return len(w.op.buf) - w.n
}

// Write appends p, flushing when the buffer fills. Chunks at least as large as the buffer
// go straight to the destination.
func (w *Writer) Write(p []byte) error {
	if op := w.op; op != nil && len(p) < len(op.buf)-w.n { // the usual case: it fits, with room to spare
		w.n += copy(op.buf[w.n:], p)
		return nil
	}
	for len(p) > 0 {
		if w.op == nil {
			if len(p) >= BufSize {
				return w.write(p)
			}
			w.op = getOp()
		}
		c := copy(w.op.buf[w.n:], p)
		w.n += c
		p = p[c:]
		if w.n == len(w.op.buf) {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Flush writes all buffered bytes and returns the buffer to the pool. The writer's fields
// are settled before the write call, so once the peer can have seen the bytes the writer
// is no longer touched: another goroutine may take it over at that point.
func (w *Writer) Flush() error {
	op, n := w.op, w.n
	w.op, w.n = nil, 0
	if op == nil {
		return nil
	}
	w.sent++
	var err error
	if n > 0 {
		err = w.writeOp(op, op.buf[:n])
	}
	putOp(op)
	return err
}

// WriteNow writes p at once, after whatever is buffered, without copying it into a
// buffer: for messages that go out one at a time (a login's answers). Over a plain socket
// it is the raw write(2) of Flush, not net.Conn's Write, whose blocking-syscall entry
// lets the runtime hand the caller's P to another OS thread (a new one when none is
// idle: a login storm grew pgmux from 8 to 17-29 threads).
func (w *Writer) WriteNow(p []byte) error {
	if err := w.Flush(); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	return w.write(p)
}

// write writes p whole, through a pooled op of its own.
func (w *Writer) write(p []byte) error {
	w.sent++
	op := getOp()
	err := w.writeOp(op, p)
	putOp(op)
	return err
}

// writeOp writes p whole with op's callback. It reads the writer's fields only before the
// first byte can reach the peer (see Flush): the raw write's state lives in op, not in w.
func (w *Writer) writeOp(op *writeOp, p []byte) error {
	raw, dst := w.raw, w.dst
	if raw == nil {
		_, err := dst.Write(p)
		return err
	}
	op.p = p
	// The write is first tried with the descriptor merely held (RawConn.Control); only
	// what the socket does not take goes through RawConn.Write, which waits in the
	// runtime's poller. Most writes are taken whole, and Control skips Write's per-call
	// work (the descriptor's write lock, the poller's reset and deadline check). Its
	// write lock is not needed: a Writer is its socket's only writer, used by one
	// goroutine at a time.
	if op.now == nil {
		op.now = op.readyNow // made once per op, at its first write to a socket
	}
	err := raw.Control(op.now)
	if err == nil && op.again {
		err = raw.Write(op.fn)
	}
	if err == nil {
		err = op.err
	}
	op.p, op.err, op.again = nil, nil, false
	return err
}

// writeOp is a batch's buffer and its raw write in progress; fn is the write's callback,
// a method value made once per op so that a write allocates nothing.
type writeOp struct {
	buf []byte // BufSize bytes
	p   []byte
	err error
	fn  func(uintptr) bool
	// now is fn run once with the descriptor held (made at the op's first write to a
	// socket); again is set when the socket was full.
	now   func(uintptr)
	again bool
	// TryFlush's: its callback (made at the first TryFlush of this op) and progress.
	try   func(uintptr)
	wrote int
}

var writeOps = sync.Pool{New: func() any {
	op := &writeOp{buf: make([]byte, BufSize)}
	op.fn = op.ready
	return op
}}

func getOp() *writeOp { return writeOps.Get().(*writeOp) }

func putOp(op *writeOp) { writeOps.Put(op) }

// ready is called with the descriptor held: it writes until done, an error, or the
// socket is full (false: the poller waits until it is writable and calls again).
func (op *writeOp) ready(fd uintptr) bool {
	for len(op.p) > 0 {
		n, err := sysWrite(int(fd), op.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			op.err = err
			return true
		}
		op.p = op.p[n:]
	}
	return true
}

// readyNow is ready without the poller: what the socket does not take stays in op.p,
// and op.again says so.
func (op *writeOp) readyNow(fd uintptr) { op.again = !op.ready(fd) }

func (w *Writer) release() {
	if w.op != nil {
		putOp(w.op)
		w.op = nil
	}
}

// TryFlush writes the buffered bytes without waiting for the socket: what it does not
// take stays buffered, in order, and TryFlush returns syscall.EAGAIN. It is for an event
// loop that must not block; a later Flush (on a goroutine that may wait) sends the rest.
// Over anything but a plain socket it is Flush.
func (w *Writer) TryFlush() error {
	op, n := w.op, w.n
	if op == nil {
		return nil
	}
	if n == 0 || w.raw == nil {
		return w.Flush()
	}
	if op.try == nil {
		op.try = op.tryWrite
	}
	op.p, op.wrote, op.err = op.buf[:n], 0, nil
	w.sent++
	err := w.raw.Control(op.try)
	wrote, werr := op.wrote, op.err
	op.p, op.err = nil, nil
	if err == nil {
		err = werr
	}
	if err == syscall.EAGAIN {
		w.n = copy(op.buf, op.buf[wrote:n])
		return err
	}
	w.op, w.n = nil, 0
	putOp(op)
	return err
}

// tryWrite is TryFlush's callback: write(2) until done or the socket is full.
func (op *writeOp) tryWrite(fd uintptr) {
	for op.wrote < len(op.p) {
		m, err := sysWrite(int(fd), op.p[op.wrote:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			op.err = err
			return
		}
		op.wrote += m
	}
}
