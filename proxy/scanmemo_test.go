package proxy

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// oneAtATime yields one message per Read, so every message is read into a buffer of its
// own, most often the same pooled buffer at the same address.
type oneAtATime struct{ msgs [][]byte }

func (r *oneAtATime) Read(p []byte) (int, error) {
	if len(r.msgs) == 0 {
		return 0, nil
	}
	n := copy(p, r.msgs[0])
	if r.msgs[0] = r.msgs[0][n:]; len(r.msgs[0]) == 0 {
		r.msgs = r.msgs[1:]
	}
	return n, nil
}

// The memo answers for the message being handled only: texts of the same length at the
// same address in later messages are scanned again, and looking at one text several
// times in one message scans it once.
func TestScanMemoFollowsMessages(t *testing.T) {
	texts := []string{"select 1;", "listen x;", "select 2;", "begin   ;", "select 3;"}
	want := []bool{false, true, false, true, false}
	src := &oneAtATime{}
	for _, q := range texts {
		src.msgs = append(src.msgs, wire.Query(nil, q))
	}
	s := &Session{rd: wire.NewReader(src), sessionWork: newWork()}
	addrs := map[uintptr]bool{}
	for i := range texts {
		typ, n, err := s.rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('Q'), typ)
		m, err := s.rd.Peek(n)
		require.NoError(t, err)
		text, _, err := wire.CString(wire.Body(m))
		require.NoError(t, err)
		q := unsafe.String(&text[0], len(text))
		addrs[uintptr(unsafe.Pointer(&text[0]))] = true
		for range 3 {
			require.Equal(t, want[i], s.maybeInteresting(q), texts[i])
		}
		require.Equal(t, s.rd.Seq(), s.scan.seq)
		_, err = s.rd.Message(n)
		require.NoError(t, err)
		s.rd.Release()
	}
	t.Logf("%d distinct text addresses over %d messages", len(addrs), len(texts))
}
