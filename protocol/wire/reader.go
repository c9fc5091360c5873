package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// HeaderLen is the size of a typed message header: one type byte and a 4-byte length.
const HeaderLen = 5

// ErrTooLarge is returned when a message's declared length exceeds the reader's limit.
var ErrTooLarge = errors.New("message too large")

// ErrBadLength is returned when a message declares a length smaller than its own header.
var ErrBadLength = errors.New("invalid message length")

// Reader reads framed messages from r. It is not safe for concurrent use; the goroutine
// that reads a connection owns its Reader.
type Reader struct {
	src io.Reader
	raw syscall.RawConn // set for plain sockets: reads straight from the descriptor
	// fillRaw's state, kept here so that its callback needs no closure.
	readFn  func(uintptr) bool
	nowFn   func(uintptr) // ReadNow's callback, made at its first call
	need, n int
	rerr    error
	tries   int     // readReady's calls in this fillRaw: the first one is the poller's optimistic try
	buf     *[]byte // nil while idle
	r, w    int
	small   [HeaderLen]byte // the only bytes held while waiting on an idle connection
	ready   bool            // the next read is known to find bytes (Ready): no header try
	// MaxMessage bounds Next's declared length (max_packet_size); 0 means 1 GiB.
	MaxMessage int
	seq        uint64 // calls of Next so far (Seq)
	took       int    // bytes of the message Next returned last consumed since (Current)
}

// Seq counts the calls of Next: views of the message Next returned (Peek, Message) stay
// within that message's bytes while Seq is unchanged, so a value computed from a view can
// be kept under (Seq, address, length) until the next message.
func (rd *Reader) Seq() uint64 { return rd.seq }

// NewReader returns a Reader over src.
func NewReader(src io.Reader) *Reader {
	rd := &Reader{}
	rd.Reset(src)
	return rd
}

// Reset points the reader at a new source, dropping any buffered bytes.
func (rd *Reader) Reset(src io.Reader) {
	rd.src = src
	rd.raw = nil
	if sc, ok := socket(src); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			rd.raw = raw
			if rd.readFn == nil {
				rd.readFn = rd.readReady
			}
		}
	}
	rd.r, rd.w = 0, 0
	rd.Release()
}

// SetSource points the reader at a new source for the same stream: what is buffered
// stays, to be read before the new source's bytes.
func (rd *Reader) SetSource(src io.Reader) {
	r, w, buf := rd.r, rd.w, rd.buf
	rd.buf = nil
	rd.Reset(src)
	rd.r, rd.w, rd.buf = r, w, buf
	rd.Release()
}

// Window returns the buffered bytes not yet consumed, from the current message's header
// on, as a view valid until the next call on the reader.
func (rd *Reader) Window() []byte {
	if rd.buf == nil {
		return nil
	}
	return (*rd.buf)[rd.r:rd.w]
}

// Current returns the buffered bytes from the start of the message Next returned last,
// what of it was consumed since included, to the end of what is buffered: a view of that
// message (Peek before it is consumed, Message after) lies at the same offset in it
// either way. nil when the message's start is no longer buffered (a chunked Forward or
// Skip refilled the buffer).
func (rd *Reader) Current() []byte {
	if rd.buf == nil || rd.took > rd.r {
		return nil
	}
	return (*rd.buf)[rd.r-rd.took : rd.w]
}

// Buffered reports how many bytes are buffered and not yet consumed.
func (rd *Reader) Buffered() int { return rd.w - rd.r }

// Release returns the buffer to the shared pool if nothing is buffered.
func (rd *Reader) Release() { rd.ReleaseTo(nil) }

// ReleaseTo is Release giving the buffer to st (a loop's own stack; nil: the shared
// pool).
func (rd *Reader) ReleaseTo(st *BufStack) {
	if rd.buf != nil && rd.r == rd.w {
		st.put(rd.buf)
		rd.buf = nil
		rd.r, rd.w = 0, 0
	}
}

// Drop discards what is buffered and returns the buffer to the shared pool: for a
// connection that is done (a client that sent Terminate leaves its header unread).
func (rd *Reader) Drop() {
	rd.r = rd.w
	rd.Release()
}

// fill reads at least once from the source, growing the buffered window to hold at least
// need bytes when possible. With no buffer, it blocks on a tiny array so that an idle
// connection holds no pooled buffer, then moves what it read into a pooled one.
func (rd *Reader) fill(need int) error {
	if rd.raw != nil {
		return rd.fillRaw(need)
	}
	if rd.buf == nil {
		n, err := rd.src.Read(rd.small[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
		rd.buf = getBuf()
		rd.r, rd.w = 0, copy(*rd.buf, rd.small[:n])
		return nil
	}
	rd.makeRoom(need)
	n, err := rd.src.Read((*rd.buf)[rd.w:])
	rd.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// fillRaw reads from the descriptor when the poller says it is readable. A buffer is
// taken from the pool only for the read attempt and given back if nothing arrived, so a
// connection waiting for its peer holds none, and whatever is ready is read in one call.
func (rd *Reader) fillRaw(need int) error {
	rd.need, rd.n, rd.rerr, rd.tries = need, 0, nil, 0
	err := rd.raw.Read(rd.readFn)
	rd.ready = false
	if err != nil {
		return err
	}
	if rd.rerr != nil {
		return rd.rerr
	}
	if rd.n <= 0 {
		return io.EOF
	}
	rd.w += rd.n
	return nil
}

// readReady is fillRaw's callback, called by the poller when the descriptor may be
// readable; it is a method value made once per Reader so that a read allocates nothing.
func (rd *Reader) readReady(fd uintptr) bool {
	rd.tries++
	if rd.tries == 1 && !rd.ready && rd.r == rd.w && rd.need == HeaderLen {
		return rd.tryHeader(int(fd))
	}
	if rd.buf == nil {
		rd.buf = getBuf()
		rd.r, rd.w = 0, 0
	}
	rd.makeRoom(rd.need)
	for {
		rd.n, rd.rerr = sysRead(int(fd), (*rd.buf)[rd.w:])
		if rd.rerr != syscall.EINTR {
			break
		}
	}
	if rd.rerr == syscall.EAGAIN {
		if rd.r == rd.w {
			putBuf(rd.buf)
			rd.buf = nil
			rd.r, rd.w = 0, 0
		}
		return false
	}
	return true
}

// tryHeader is the poller's first, optimistic try at a message boundary with nothing
// buffered: the moment after a connection's request or answer went out, when its peer
// has usually sent nothing yet. It reads into the reader's header array, so the read that
// finds nothing (EAGAIN, the common case) takes no pooled buffer and gives none back: that
// pair cost about 260 instructions, twice per transaction per side. When bytes were there,
// they move into a pooled buffer and the rest is read at once.
func (rd *Reader) tryHeader(fd int) bool {
	if rd.buf != nil { // empty: give it back now, as readReady would after EAGAIN
		putBuf(rd.buf)
		rd.buf = nil
		rd.r, rd.w = 0, 0
	}
	var n int
	var err error
	for {
		if n, err = sysRead(fd, rd.small[:]); err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		return false
	}
	if err != nil || n == 0 {
		rd.n, rd.rerr = n, err
		return true
	}
	rd.buf = getBuf()
	rd.r, rd.w = 0, 0
	got := copy(*rd.buf, rd.small[:n])
	if n == len(rd.small) {
		var m int
		for {
			if m, err = sysRead(fd, (*rd.buf)[got:]); err != syscall.EINTR {
				break
			}
		}
		if m > 0 {
			got += m
		}
		// EAGAIN: only the header was there. Any other failure shows on the next read.
	}
	rd.n = got
	return true
}

// More reads once from the source, adding to what is buffered, for a caller that needs
// to see further ahead than the message Next returned. Views taken before (Peek,
// Message, Window) are not to be used after it. It waits like every read, up to the
// source's deadline.
func (rd *Reader) More() error {
	need := rd.w - rd.r + 1
	if rd.buf == nil || need < HeaderLen {
		need = HeaderLen
	}
	err := rd.fill(need)
	if err == io.EOF && rd.w > rd.r {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Ready tells the reader that its descriptor has bytes to read now (its owner waited for
// them, as a login on a client loop does for each answer), so that the read under way
// or the next one takes what is there in one call rather than trying the header first.
func (rd *Reader) Ready() { rd.ready = true }

// Await waits until at least one byte is buffered, reading once if none is; like every
// read it ends early at the source's read deadline. Nothing is consumed.
func (rd *Reader) Await() error {
	if rd.r < rd.w {
		return nil
	}
	return rd.fill(HeaderLen)
}

// Shrink moves what is buffered, when it is at most SmallBufSize bytes, out of the
// reader's pool-sized buffer into a small one, and gives the large one back: for a
// reader about to hold a short request for a while (a client queued for a server: at
// 5,000 clients on a pool of 20 nearly all of them are, and 16 KB each was 80 MB). The
// next read from the source moves the bytes back into a pool-sized buffer (makeRoom).
// Views of the buffered bytes taken before (Peek, Message, Window) must not be used
// after it; the bytes themselves, and Seq, do not change.
func (rd *Reader) Shrink() { rd.ShrinkTo(nil) }

// ShrinkTo is Shrink giving the large buffer to st (a loop's own stack; nil: the
// shared pool).
func (rd *Reader) ShrinkTo(st *BufStack) {
	if rd.buf == nil || cap(*rd.buf) != BufSize || rd.w-rd.r > SmallBufSize {
		return
	}
	if rd.r == rd.w {
		rd.ReleaseTo(st)
		return
	}
	sb := smallBufs.Get().(*[]byte)
	n := copy(*sb, (*rd.buf)[rd.r:rd.w])
	st.put(rd.buf)
	rd.buf, rd.r, rd.w = sb, 0, n
}

// makeRoom compacts or grows the buffer so that need bytes fit from rd.r, and there is
// free space after rd.w. A small buffer (Shrink) is traded for a pool-sized one first (or,
// for a message larger than that, grown to it below), so reads from the source never go
// into one.
func (rd *Reader) makeRoom(need int) {
	if cap(*rd.buf) < BufSize && need <= BufSize {
		nb := getBuf()
		rd.w = copy(*nb, (*rd.buf)[rd.r:rd.w])
		rd.r = 0
		putBuf(rd.buf)
		rd.buf = nb
	}
	b := *rd.buf
	if rd.r > 0 && (rd.w == len(b) || need > len(b)-rd.r) {
		rd.w = copy(b, b[rd.r:rd.w])
		rd.r = 0
	}
	if need > len(b) {
		nb := make([]byte, need)
		rd.w = copy(nb, b[rd.r:rd.w])
		rd.r = 0
		putBuf(rd.buf)
		rd.buf = &nb
	}
}

// ensure makes n bytes available in the buffer.
func (rd *Reader) ensure(n int) error {
	if rd.w-rd.r >= n {
		return nil // inlined: Next, Peek and Message ask it ~25 times a transaction
	}
	return rd.ensureMore(n)
}

// ensureMore is ensure's reading part.
func (rd *Reader) ensureMore(n int) error {
	for rd.w-rd.r < n {
		if err := rd.fill(n); err != nil {
			if err == io.EOF && rd.w > rd.r {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// Next waits for the next message header and returns its type and the length of its body
// (the declared length minus the 4 length bytes). The header stays unconsumed: follow with
// Message, Forward or Skip.
func (rd *Reader) Next() (typ byte, bodyLen int, err error) {
	rd.seq++
	rd.took = 0
	// Inlined for a header buffered with a length in range, the loop's case (several
	// messages a transaction); the rest, reading and refusals, in nextMore.
	if rd.w-rd.r >= HeaderLen {
		b := (*rd.buf)[rd.r:rd.w]
		if n := int(binary.BigEndian.Uint32(b[1:5])); n >= 4 && (n-4 <= rd.MaxMessage || rd.MaxMessage <= 0 && n-4 <= 1<<30) {
			return b[0], n - 4, nil
		}
	}
	return rd.nextMore()
}

// nextMore is Next after the count: the header read in, its length checked.
func (rd *Reader) nextMore() (typ byte, bodyLen int, err error) {
	if err := rd.ensure(HeaderLen); err != nil {
		return 0, 0, err
	}
	b := (*rd.buf)[rd.r:]
	n := int(binary.BigEndian.Uint32(b[1:5]))
	if n < 4 {
		return 0, 0, fmt.Errorf("%w: %d for message type %q", ErrBadLength, n, b[0])
	}
	max := rd.MaxMessage
	if max <= 0 {
		max = 1 << 30
	}
	if n-4 > max {
		return 0, 0, fmt.Errorf("%w: %d bytes for message type %q, limit %d", ErrTooLarge, n, b[0], max)
	}
	return b[0], n - 4, nil
}

// Peek returns the whole message whose header Next just returned without consuming it;
// the view is valid until the next call on the reader.
func (rd *Reader) Peek(bodyLen int) ([]byte, error) {
	if n := HeaderLen + bodyLen; rd.w-rd.r >= n {
		return (*rd.buf)[rd.r : rd.r+n], nil // inlined: buffered whole
	}
	return rd.peekMore(bodyLen)
}

// peekMore is Peek reading what is not buffered yet.
func (rd *Reader) peekMore(bodyLen int) ([]byte, error) {
	n := HeaderLen + bodyLen
	if err := rd.ensure(n); err != nil {
		return nil, err
	}
	return (*rd.buf)[rd.r : rd.r+n], nil
}

// Message returns the whole message (header and body) whose header Next just returned,
// as a view valid until the next call on the reader, and consumes it.
func (rd *Reader) Message(bodyLen int) ([]byte, error) {
	m, err := rd.Peek(bodyLen)
	if err == nil {
		rd.r += len(m)
		rd.took += len(m)
	}
	return m, err
}

// Forward copies the message whose header Next just returned to w, chunk by chunk, so a
// message of any size passes through a fixed buffer.
func (rd *Reader) Forward(w *Writer, bodyLen int) error {
	left := HeaderLen + bodyLen
	for left > 0 {
		if rd.r == rd.w {
			if err := rd.fill(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		chunk := rd.w - rd.r
		if chunk > left {
			chunk = left
		}
		if err := w.Write((*rd.buf)[rd.r : rd.r+chunk]); err != nil {
			return &WriteError{Err: err}
		}
		rd.r += chunk
		rd.took += chunk
		left -= chunk
	}
	return nil
}

// WriteError wraps a failure of the destination during Forward, so callers can tell it
// from a failure of the source.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Skip discards the message whose header Next just returned.
func (rd *Reader) Skip(bodyLen int) error {
	left := HeaderLen + bodyLen
	for left > 0 {
		if rd.r == rd.w {
			if err := rd.fill(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		chunk := rd.w - rd.r
		if chunk > left {
			chunk = left
		}
		rd.r += chunk
		rd.took += chunk
		left -= chunk
	}
	return nil
}

// PeekByte returns the next byte without consuming it, reading when nothing is buffered:
// for the first byte of a connection, which tells a TLS handshake from a startup packet.
func (rd *Reader) PeekByte() (byte, error) {
	if rd.r == rd.w {
		if err := rd.fill(1); err != nil {
			return 0, err
		}
	}
	return (*rd.buf)[rd.r], nil
}

// ReadFull reads exactly len(p) bytes, draining the buffer first. It is used for the
// untyped startup packet.
func (rd *Reader) ReadFull(p []byte) error {
	for len(p) > 0 {
		if rd.r == rd.w {
			if err := rd.fill(1); err != nil {
				if err == io.EOF && len(p) > 0 {
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := copy(p, (*rd.buf)[rd.r:rd.w])
		rd.r += n
		p = p[n:]
	}
	return nil
}

// ReadNow reads what the socket holds, in one read(2) and without waiting, into the
// buffer (taking one from the pool if the reader holds none). It is for an event loop
// that owns the reader and was told the socket is readable. The read holds the socket's
// descriptor (RawConn.Control), so a concurrent Close cannot hand the number to another
// socket meanwhile. It returns syscall.EAGAIN when nothing was there (the buffer goes
// back if empty), io.EOF at the end of the stream, and ErrNoSocket for a reader that is
// not over a plain socket; more reports a read that filled the buffer's free space,
// after which the socket may hold more (an edge-triggered loop reads again).
func (rd *Reader) ReadNow() (more bool, err error) { return rd.ReadNowWith(nil) }

// ReadNowWith is ReadNow taking its buffer from st and giving it back there (a loop's
// own stack, BufStack; nil: the shared pool).
func (rd *Reader) ReadNowWith(st *BufStack) (more bool, err error) {
	if rd.raw == nil {
		return false, ErrNoSocket
	}
	if rd.nowFn == nil {
		rd.nowFn = rd.readNow
	}
	if rd.buf == nil {
		rd.buf = st.get()
		rd.r, rd.w = 0, 0
	}
	if rd.r == rd.w {
		rd.r, rd.w = 0, 0 // nothing buffered: all of the buffer is free
	} else if b := *rd.buf; rd.r > 0 && len(b)-rd.w < len(b)/2 {
		// A message's start at the end of the buffer: it moves to the front, so that the
		// read has room. With only the tail free, an answer larger than the tail filled
		// it, and the loop took that for a long answer (more) and handed it to a reader.
		rd.w = copy(b, b[rd.r:rd.w])
		rd.r = 0
	}
	rd.makeRoom(HeaderLen)
	rd.n, rd.rerr = 0, nil
	if err := rd.raw.Control(rd.nowFn); err != nil {
		rd.ReleaseTo(st)
		return false, err
	}
	space := len(*rd.buf) - rd.w
	switch {
	case rd.rerr != nil:
		rd.ReleaseTo(st)
		return false, rd.rerr
	case rd.n == 0:
		rd.ReleaseTo(st)
		return false, io.EOF
	}
	rd.w += rd.n
	return rd.n == space, nil
}

// readNow is ReadNow's callback (a method value made once per Reader).
func (rd *Reader) readNow(fd uintptr) {
	for {
		if rd.n, rd.rerr = sysRead(int(fd), (*rd.buf)[rd.w:]); rd.rerr != syscall.EINTR {
			return
		}
	}
}

// Take consumes the message Whole just reported whole, as Next then Message would, and
// returns it (header and body); bodyLen is Whole's, within MaxMessage (Next's refusal
// is not made here). A relay taking a run of small buffered messages (proxy's relayRun)
// looks at each header once, not three times.
func (rd *Reader) Take(bodyLen int) []byte {
	n := HeaderLen + bodyLen
	m := (*rd.buf)[rd.r : rd.r+n]
	rd.seq++
	rd.r += n
	rd.took = n
	return m
}

// Whole reports the next message's type and body length when the whole message is
// buffered; ok is false when it is not (or its header declares a length Next would
// refuse). It consumes nothing and reads nothing.
func (rd *Reader) Whole() (typ byte, bodyLen int, ok bool) {
	if rd.w-rd.r < HeaderLen {
		return 0, 0, false
	}
	b := (*rd.buf)[rd.r:rd.w]
	n := int(binary.BigEndian.Uint32(b[1:5]))
	if n < 4 || len(b) < n+1 {
		return 0, 0, false
	}
	return b[0], n - 4, true
}
