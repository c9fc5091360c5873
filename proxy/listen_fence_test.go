package proxy

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// TestAskFenceFirstMessages: a listening client's request asks for one fence, at its
// first message: a Query, a FunctionCall, a Sync alone, or the first extended-protocol
// message before its Sync; Flush and COPY data ask nothing. A request refused up to its
// Sync ends there (skipUntilSync).
func TestAskFenceFirstMessages(t *testing.T) {
	open := false
	asks := func(msgs string) int {
		t.Helper()
		n := 0
		for i := range len(msgs) {
			var first bool
			if first, open = fenceAsked(open, msgs[i]); first {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, asks("Q"))
	require.Equal(t, 1, asks("PDS"), "Parse, Describe, Sync")
	require.Equal(t, 1, asks("BES"))
	require.Equal(t, 1, asks("PDHBEHS"), "Flush inside the request")
	require.Equal(t, 1, asks("Qddc"), "COPY FROM STDIN: its data belongs to the Query")
	require.Equal(t, 2, asks("SF"), "a Sync alone, a FunctionCall")
	require.Equal(t, 0, asks("Hd"), "Flush or COPY data alone start nothing")
	require.Equal(t, 1, asks("PB"), "a request refused before its Sync")
	require.True(t, open)

	s := &Session{srv: &Server{}, entry: &poolEntry{key: poolKey{db: "app", user: "u"}}, sessionWork: newWork(), rd: wire.NewReader(bytes.NewReader([]byte{'S', 0, 0, 0, 4})),
		wr: wire.NewWriter(io.Discard)}
	s.notifyBox().reqOpen = true
	typ, n, err := s.rd.Next()
	require.NoError(t, err)
	skipping, err := s.skipUntilSync(typ, n) // its Sync, answered by pgmux
	require.NoError(t, err)
	require.False(t, skipping)
	require.False(t, s.notifyBox().reqOpen, "the refused request ended at its Sync")
	first, _ := fenceAsked(s.notifyBox().reqOpen, 'B')
	require.True(t, first, "the next request asks again")
}
