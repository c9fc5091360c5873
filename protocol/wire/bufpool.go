package wire

import "sync"

// BufSize is the size of the pooled read and write buffers.
const BufSize = 16 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, BufSize); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) != BufSize {
		return // an oversized buffer grown for one large message is left to the GC
	}
	*b = (*b)[:BufSize]
	bufs.Put(b)
}
