package wire

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// loopReader replays one byte sequence forever, so a benchmark never hits EOF.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// dataRowAndComplete is a server answer: DataRow messages and a CommandComplete.
func dataRowAndComplete(rows int) []byte {
	var b []byte
	for i := 0; i < rows; i++ {
		var st int
		b, st = Begin(b, 'D')
		b = AppendInt16(b, 2)
		b = AppendInt32(b, 5)
		b = append(b, "hello"...)
		b = AppendInt32(b, 3)
		b = append(b, "123"...)
		b = Finish(b, st)
	}
	b, st := Begin(b, 'C')
	b = AppendString(b, "SELECT 10")
	return Finish(b, st)
}

// relay forwards every message of one answer from rd to w and flushes, as the proxy does.
func relay(rd *Reader, w *Writer, msgs int) error {
	for i := 0; i < msgs; i++ {
		_, n, err := rd.Next()
		if err != nil {
			return err
		}
		if err := rd.Forward(w, n); err != nil {
			return err
		}
	}
	return w.Flush()
}

func TestForwardIsByteExact(t *testing.T) {
	in := dataRowAndComplete(10)
	var out bytes.Buffer
	rd := NewReader(bytes.NewReader(in))
	w := NewWriter(&out)
	require.NoError(t, relay(rd, w, 11))
	require.Equal(t, in, out.Bytes())
	_, _, err := rd.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestForwardLargeMessageInChunks(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 5*BufSize+17)
	msg, st := Begin(nil, 'D')
	msg = append(msg, body...)
	msg = Finish(msg, st)
	var out bytes.Buffer
	rd := NewReader(bytes.NewReader(msg))
	require.NoError(t, relay(rd, NewWriter(&out), 1))
	require.Equal(t, msg, out.Bytes())
}

// TestForwardAllocatesNothing: forwarding DataRow and CommandComplete messages costs no
// allocation once the pooled buffers are warm.
func TestForwardAllocatesNothing(t *testing.T) {
	in := dataRowAndComplete(10)
	rd := NewReader(&loopReader{data: in})
	w := NewWriter(io.Discard)
	require.NoError(t, relay(rd, w, 11))
	allocs := testing.AllocsPerRun(1000, func() {
		if err := relay(rd, w, 11); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkForwardDataRows(b *testing.B) {
	in := dataRowAndComplete(10)
	rd := NewReader(&loopReader{data: in})
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		if err := relay(rd, w, 11); err != nil {
			b.Fatal(err)
		}
	}
}
