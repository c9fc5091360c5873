package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes through Next, Peek, Message, Forward and Skip with a
// small MaxMessage: no panic, no buffer beyond the limit, and every byte accounted for.
func FuzzReader(f *testing.F) {
	f.Add([]byte("Q\x00\x00\x00\x0dSELECT 1;\x00X\x00\x00\x00\x04"), uint8(0))
	f.Add([]byte("Q\x7f\xff\xff\xff"), uint8(1))
	f.Add([]byte("Q\x00\x00\x00\x02"), uint8(2))
	f.Add([]byte("D\x00\x00\x00\x08\x00\x01\x00\x00"), uint8(3))
	f.Add([]byte{}, uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, ops uint8) {
		const max = 256
		rd := NewReader(&chunked{b: data, n: 1 + int(ops%7)})
		rd.MaxMessage = max
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := 0; i < 1000; i++ {
			typ, n, err := rd.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadLength) {
					t.Fatalf("Next: unexpected error %v", err)
				}
				return
			}
			if n < 0 || n > max {
				t.Fatalf("Next returned body length %d beyond the limit %d", n, max)
			}
			switch (int(ops) + i) % 4 {
			case 0:
				m, err := rd.Message(n)
				if err != nil {
					return
				}
				if len(m) != HeaderLen+n || m[0] != typ {
					t.Fatalf("Message returned %d bytes for body %d", len(m), n)
				}
			case 1:
				p, err := rd.Peek(n)
				if err != nil {
					return
				}
				if len(p) != HeaderLen+n {
					t.Fatalf("Peek returned %d bytes for body %d", len(p), n)
				}
				if err := rd.Skip(n); err != nil {
					t.Fatalf("Skip after Peek: %v", err)
				}
			case 2:
				before := out.Len() + w.Buffered()
				if err := rd.Forward(w, n); err != nil {
					return
				}
				if got := out.Len() + w.Buffered() - before; got != HeaderLen+n {
					t.Fatalf("Forward wrote %d bytes for body %d", got, n)
				}
			default:
				if err := rd.Skip(n); err != nil {
					return
				}
			}
			if rd.buf != nil && cap(*rd.buf) > 1<<20 {
				t.Fatalf("reader holds a %d-byte buffer", cap(*rd.buf))
			}
		}
	})
}

// chunked returns its bytes n at a time, as a socket might.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func FuzzParseParameterStatus(f *testing.F) {
	f.Add([]byte("TimeZone\x00UTC\x00"))
	f.Add([]byte("a\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		k, v, err := ParseParameterStatus(body)
		if err != nil {
			return
		}
		if bytes.IndexByte(k, 0) >= 0 || bytes.IndexByte(v, 0) >= 0 {
			t.Fatalf("name %q or value %q contains a NUL", k, v)
		}
		if len(k)+len(v)+2 > len(body) {
			t.Fatalf("parsed more than the body holds")
		}
	})
}
