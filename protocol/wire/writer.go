package wire

import "io"

// Writer batches outgoing bytes and writes them when Flush is called or the buffer fills.
// It holds a pooled buffer only while it has unflushed bytes.
type Writer struct {
	dst io.Writer
	buf *[]byte
	n   int
}

// NewWriter returns a Writer over dst.
func NewWriter(dst io.Writer) *Writer { return &Writer{dst: dst} }

// Reset points the writer at a new destination, dropping unflushed bytes.
func (w *Writer) Reset(dst io.Writer) {
	w.dst = dst
	w.n = 0
	w.release()
}

// Buffered reports the number of unflushed bytes.
func (w *Writer) Buffered() int { return w.n }

// Write appends p, flushing when the buffer fills. Chunks at least as large as the buffer
// go straight to the destination.
func (w *Writer) Write(p []byte) error {
	for len(p) > 0 {
		if w.buf == nil {
			if len(p) >= BufSize {
				_, err := w.dst.Write(p)
				return err
			}
			w.buf = getBuf()
		}
		c := copy((*w.buf)[w.n:], p)
		w.n += c
		p = p[c:]
		if w.n == len(*w.buf) {
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
	buf, n := w.buf, w.n
	w.buf, w.n = nil, 0
	if buf == nil {
		return nil
	}
	var err error
	if n > 0 {
		_, err = w.dst.Write((*buf)[:n])
	}
	putBuf(buf)
	return err
}

func (w *Writer) release() {
	if w.buf != nil {
		putBuf(w.buf)
		w.buf = nil
	}
}
