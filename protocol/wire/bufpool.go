package wire

import (
	"sync"
	"sync/atomic"
)

// BufSize is the size of the pooled read and write buffers.
const BufSize = 16 << 10

// SmallBufSize is the size of the pooled buffers a Reader holds a short message in while
// it waits (Reader.Shrink).
const SmallBufSize = 1 << 10

var (
	bufs = sync.Pool{New: func() any {
		bufsMade.Add(1)
		b := make([]byte, BufSize)
		return &b
	}}
	smallBufs = sync.Pool{New: func() any { b := make([]byte, SmallBufSize); return &b }}
)

// bufsMade counts the read and write buffers made because the pool had none to give.
var bufsMade atomic.Int64

// BuffersMade is how many BufSize buffers the pool has made since the process started:
// what a burst costs beyond the buffers that go round (tests of bursts read it).
func BuffersMade() int64 { return bufsMade.Load() }

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

// putBuf gives b back to its pool: a pool-sized or small buffer; an oversized one grown
// for one large message is left to the GC.
func putBuf(b *[]byte) {
	switch cap(*b) {
	case BufSize:
		*b = (*b)[:BufSize]
		bufs.Put(b)
	case SmallBufSize:
		*b = (*b)[:SmallBufSize]
		smallBufs.Put(b)
	}
}

// BufStack keeps a few BufSize buffers for one goroutine's readers: a client loop
// takes a client's read buffer back when it parks the client (Reader.ReleaseTo) and
// gives it to the next read (Reader.ReadNowWith), several times a transaction. The
// shared pool's Get and Put cost ~60 instructions each (pinning the P, its per-P
// lists); a push and a pop on a loop's own stack a few, and the buffer handed on is
// the one just used, still in cache. It holds at most len(b) buffers (64 KB): more go
// to the shared pool, none is made here.
//
// Owners: the goroutine that owns it (a parker's loop), alone.
type BufStack struct {
	n int
	b [4]*[]byte
}

// get returns a buffer from the stack, else from the shared pool; st may be nil.
func (st *BufStack) get() *[]byte {
	if st != nil && st.n > 0 {
		st.n--
		b := st.b[st.n]
		st.b[st.n] = nil
		return b
	}
	return getBuf()
}

// put keeps b on the stack when it is a BufSize buffer and there is room, else gives
// it to putBuf; st may be nil.
func (st *BufStack) put(b *[]byte) {
	if st != nil && cap(*b) == BufSize && st.n < len(st.b) {
		*b = (*b)[:BufSize]
		st.b[st.n] = b
		st.n++
		return
	}
	putBuf(b)
}

// Len returns the number of buffers kept.
func (st *BufStack) Len() int { return st.n }
