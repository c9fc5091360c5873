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
