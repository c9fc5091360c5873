package wire

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Current starts at the message Next returned, before and after it is consumed, and is
// nil once a chunked Skip has refilled the buffer past its start.
func TestReaderCurrent(t *testing.T) {
	two := Query(Query(nil, "select 1"), "select 22")
	rd := NewReader(bytes.NewReader(two))
	_, n, err := rd.Next()
	require.NoError(t, err)
	m, err := rd.Peek(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "before consuming: the message's start")
	_, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "after: still its start")
	_, n, err = rd.Next()
	require.NoError(t, err)
	m, err = rd.Peek(n)
	require.NoError(t, err)
	require.Equal(t, &m[0], &rd.Current()[0], "the next message's start once Next returned it")
	require.Equal(t, &m[0], &rd.Window()[0])

	// A message larger than what one read brings: Skip refills, its start is gone.
	big := Query(nil, string(bytes.Repeat([]byte("x"), 3*BufSize)))
	rd = NewReader(&chunked{b: big, n: 1024})
	_, n, err = rd.Next()
	require.NoError(t, err)
	require.NoError(t, rd.Skip(n))
	require.Nil(t, rd.Current())
}

// More adds what the source has next to what is buffered, from the message Next returned
// on, without consuming anything.
func TestReaderMore(t *testing.T) {
	two := Query(Query(nil, "select 1"), "select 22")
	rd := NewReader(&chunked{b: two, n: 7})
	_, n, err := rd.Next()
	require.NoError(t, err)
	for len(rd.Window()) < len(two) {
		require.NoError(t, rd.More())
	}
	require.Equal(t, two, rd.Window())
	_, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, Query(nil, "select 22"), rd.Window())
	require.Error(t, rd.More(), "the source's end")
}

// ReadNow reads into all of the buffer's free room: after what was buffered is consumed
// the whole buffer, and with a message's start at the end that start moved to the front.
// An event loop takes a read that fills the room for a long answer (more) and hands it to
// a goroutine; an answer of a few KB that met only the tail of the buffer was taken so.
func TestReadNowHasRoom(t *testing.T) {
	a, b := tcpPair(t)
	rd := NewReader(b)
	send := func(n int) []byte {
		m := make([]byte, n)
		for i := range m {
			m[i] = byte(i)
		}
		_, err := a.Write(m)
		require.NoError(t, err)
		return m
	}
	readAll := func(n int) (got []byte, more bool) {
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < n && time.Now().Before(deadline) {
			mr, err := rd.ReadNow()
			if err == syscall.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			require.NoError(t, err)
			more = more || mr
			got = append(got, rd.Window()[len(got):]...)
		}
		return got, more
	}
	// 12 KB, consumed but for its last 100 bytes (a message's start).
	first := send(12 << 10)
	got, more := readAll(len(first))
	require.Equal(t, first, got)
	require.False(t, more)
	w := rd.Window()
	_, err := rd.Message(len(w) - 100 - HeaderLen) // consumes all but the last 100 bytes
	require.NoError(t, err)
	require.Equal(t, 100, rd.Buffered())
	// 12 KB more: with the start moved to the front it fits.
	second := send(12 << 10)
	got, more = readAll(100 + len(second))
	require.Equal(t, append(append([]byte(nil), first[len(first)-100:]...), second...), got)
	require.False(t, more, "12 KB behind 100 buffered bytes fill no 16 KB buffer")
	// All consumed: the next read has the whole buffer.
	_, err = rd.Message(rd.Buffered() - HeaderLen)
	require.NoError(t, err)
	third := send(15 << 10)
	got, more = readAll(len(third))
	require.Equal(t, third, got)
	require.False(t, more, "15 KB fill no empty 16 KB buffer")
}

// TestReadNowWithStack: a reader reading with a loop's BufStack takes its buffer from it
// and gives it back there when it is drained (EAGAIN with nothing buffered) or released,
// so two readers served in turn pass one buffer between them; the stack holds at most
// its four, the rest going to the shared pool, and a buffer of another size never.
func TestReadNowWithStack(t *testing.T) {
	var st BufStack
	a1, b1 := tcpPair(t)
	a2, b2 := tcpPair(t)
	r1, r2 := NewReader(b1), NewReader(b2)
	readMsg := func(a io.Writer, rd *Reader) *[]byte {
		_, err := a.Write(Query(nil, "select 1"))
		require.NoError(t, err)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := rd.ReadNowWith(&st); err == syscall.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			require.NoError(t, err)
			if _, _, whole := rd.Whole(); whole {
				break
			}
		}
		typ, n, err := rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('Q'), typ)
		_, err = rd.Message(n)
		require.NoError(t, err)
		return rd.buf
	}
	b := readMsg(a1, r1)
	_, err := r1.ReadNowWith(&st)
	require.ErrorIs(t, err, syscall.EAGAIN)
	require.Nil(t, r1.buf, "drained: the buffer went back")
	require.Equal(t, 1, st.Len(), "to the stack")
	require.Same(t, b, readMsg(a2, r2), "the next reader's read takes the same buffer")
	require.Zero(t, st.Len())
	r2.ReleaseTo(&st)
	require.Equal(t, 1, st.Len())

	for range 6 {
		nb := make([]byte, BufSize)
		st.put(&nb)
	}
	require.Equal(t, 4, st.Len(), "at most four kept")
	small := make([]byte, SmallBufSize)
	st.n = 0
	st.put(&small)
	require.Zero(t, st.Len(), "a small buffer goes to its own pool")
	var none *BufStack
	require.Len(t, *none.get(), BufSize, "a nil stack is the shared pool")
}

// TestNextRefusesBufferedHeaders: Next's refusals hold for a header already buffered
// (its inlined path) as for one it reads: a length under 4, one past MaxMessage, and
// past 1 GiB when MaxMessage is 0.
func TestNextRefusesBufferedHeaders(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte {
		return []byte{typ, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	for _, c := range []struct {
		name string
		max  int
		n    uint32
		want error
	}{
		{"length 3", 0, 3, ErrBadLength},
		{"past MaxMessage", 100, 4 + 101, ErrTooLarge},
		{"past 1 GiB", 0, 4 + 1<<30 + 1, ErrTooLarge},
		{"at MaxMessage", 100, 4 + 100, nil},
	} {
		rd := NewReader(bytes.NewReader(append(hdr('Q', c.n), make([]byte, 200)...)))
		rd.MaxMessage = c.max
		_, err := rd.Peek(0) // buffers the header (and what follows) before Next looks
		require.NoError(t, err, c.name)
		typ, n, err := rd.Next()
		if c.want != nil {
			require.ErrorIs(t, err, c.want, c.name)
			continue
		}
		require.NoError(t, err, c.name)
		require.Equal(t, byte('Q'), typ)
		require.Equal(t, int(c.n)-4, n)
	}
}
