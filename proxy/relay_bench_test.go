package proxy

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// A pool.Conn can only be leased by its pool (its lessee field is unexported), so Pump
// cannot run here on a fabricated connection. These tests drive, message by message, the
// same functions Pump runs for a DataRow or a CommandComplete (its default branch):
// answer under s.mu, then forward into the client's writer.

// relayLoopReader replays one byte sequence forever, so a benchmark never hits EOF.
type relayLoopReader struct {
	data []byte
	off  int
}

func (l *relayLoopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// relayAnswer is a server's answer to a simple query: rows DataRows and a CommandComplete.
func relayAnswer(rows int) []byte {
	var b []byte
	for i := 0; i < rows; i++ {
		var st int
		b, st = wire.Begin(b, 'D')
		b = wire.AppendInt16(b, 2)
		b = wire.AppendInt32(b, 5)
		b = append(b, "hello"...)
		b = wire.AppendInt32(b, 3)
		b = append(b, "123"...)
		b = wire.Finish(b, st)
	}
	b, st := wire.Begin(b, 'C')
	b = wire.AppendString(b, "SELECT 10")
	return wire.Finish(b, st)
}

// relaySession is a linked session as Pump sees it while a simple query is answered: the
// Query's expectation heads the response queue and the client's writer is live.
func relaySession(dst io.Writer) *Session {
	s := &Session{wr: wire.NewWriter(dst), sessionWork: &sessionWork{book: book{TxStatus: 'I', Pending: 1}}}
	s.q.push(&expect{Kind: 'Q'})
	return s
}

// pumpMessage is Pump's per-message work for a message that is neither ReadyForQuery,
// ParameterStatus, ErrorResponse nor a notice: match it to its request, then relay it.
func pumpMessage(s *Session, rd *wire.Reader) (byte, error) {
	typ, n, err := rd.Next()
	if err != nil {
		return 0, err
	}
	if rr := s.rr.Load(); rr != nil { // Pump's check for a held replica read (replica.go)
		return 0, errors.New("unexpected held read")
	}
	s.mu.Lock()
	hide, row := s.answer(nil, typ)
	s.mu.Unlock()
	switch {
	case row == link.RowCheck && typ == 'D':
		return typ, s.readCheckRow(rd, n)
	case row == link.RowSettings && typ == 'D':
		return typ, s.readRow(rd, n)
	case hide:
		return typ, rd.Skip(n)
	}
	return typ, s.forward(rd, n)
}

// relayOne relays one whole answer of msgs messages and flushes, as Pump does once the
// server's bytes are consumed.
func relayOne(s *Session, rd *wire.Reader, msgs int) error {
	for i := 0; i < msgs; i++ {
		if _, err := pumpMessage(s, rd); err != nil {
			return err
		}
	}
	return s.wr.Flush()
}

func TestRelayForwardsDataRowsUnchanged(t *testing.T) {
	in := relayAnswer(10)
	var out writeRecorder
	s := relaySession(&out)
	rd := wire.NewReader(&relayLoopReader{data: in})
	require.NoError(t, relayOne(s, rd, 11))
	require.Equal(t, in, out.b)
	require.Equal(t, 1, s.q.len(), "DataRow and CommandComplete must not retire the Query")
	require.Equal(t, uint64(len(in)), s.ops.out.Load())
}

// TestRelayAllocatesNothing: relaying DataRow and CommandComplete on the server reader's
// path costs no allocation once the pooled buffers are warm.
func TestRelayAllocatesNothing(t *testing.T) {
	dataRows := relayAnswer(1)
	dataRows = dataRows[:len(dataRows)-len(relayAnswer(0))] // one DataRow, no CommandComplete
	for _, tc := range []struct {
		name string
		in   []byte // one unit of the looping server stream
		msgs int    // messages in it
		typ  byte   // type of its last message
	}{
		{"DataRow", dataRows, 1, 'D'},
		{"CommandComplete", relayAnswer(0), 1, 'C'},
		{"answer of 10 rows", relayAnswer(10), 11, 'C'},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := relaySession(io.Discard)
			rd := wire.NewReader(&relayLoopReader{data: tc.in})
			require.NoError(t, relayOne(s, rd, tc.msgs)) // warm the buffers
			var typ byte
			allocs := testing.AllocsPerRun(1000, func() {
				var err error
				for i := 0; i < tc.msgs; i++ {
					if typ, err = pumpMessage(s, rd); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.wr.Flush(); err != nil {
					t.Fatal(err)
				}
			})
			require.Equal(t, tc.typ, typ)
			require.Zero(t, allocs)
		})
	}
}

func BenchmarkRelayDataRows(b *testing.B) {
	in := relayAnswer(10)
	s := relaySession(io.Discard)
	rd := wire.NewReader(&relayLoopReader{data: in})
	if err := relayOne(s, rd, 11); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		if err := relayOne(s, rd, 11); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*11), "ns/msg")
}

// writeRecorder keeps what was written.
type writeRecorder struct{ b []byte }

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
