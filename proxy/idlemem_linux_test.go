//go:build linux

package proxy

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// A client parked without its net.Conn holds no writer either (64 bytes an idle client):
// what other goroutines send it meanwhile goes to its descriptor, SUSPEND finds nothing
// left to flush, and it gets a writer back when it wakes, here with a pipeline of requests
// that came in one write while it was parked, all answered in one flush.
func TestParkedClientHoldsNoWriter(t *testing.T) {
	s, client := parkingSession(t)
	t.Cleanup(func() { s.home().unpark(s) }) // a failure here leaves no parked client to end
	require.True(t, s.park())
	require.Nil(t, s.rd, "no reader while parked")
	require.Nil(t, s.wr, "no writer while parked")
	require.True(t, s.relayQuiet(), "SUSPEND: nothing is being relayed to a parked client")

	// The parker's part as the socket wakes, taken first here: the loop must not resume
	// the session itself. The requests come while it is still without reader or writer.
	require.True(t, s.home().unpark(s))
	pipeline := wire.Query(wire.Query(wire.Query(nil, "SELECT 1"), "SELECT 2"), "SELECT 3")
	_, err := client.Write(pipeline)
	require.NoError(t, err)
	require.Nil(t, s.wr)
	s.reattach()
	require.NotNil(t, s.wr, "a woken client writes again")
	var answers []byte
	for i := 0; i < 3; i++ {
		typ, n, err := s.rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('Q'), typ)
		_, err = s.rd.Message(n)
		require.NoError(t, err)
		rfq := wire.ReadyForQuery(nil, 'I')
		require.NoError(t, s.wr.Write(rfq))
		answers = append(answers, rfq...)
	}
	require.Equal(t, len(answers), s.wr.Buffered(), "answered in one batch")
	require.NoError(t, s.wr.Flush())
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(answers))
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, answers, got)

	// Parked again (its resumed connection now) and killed: the FATAL still reaches it.
	require.True(t, s.park())
	require.Nil(t, s.wr)
	pe := shutdownFatal()
	s.tell(pe, time.Second)
	s.home().unpark(s)
	s.closeAndWake()
	all, err := io.ReadAll(client)
	require.NoError(t, err)
	require.Equal(t, pe.Append(nil), all, "the FATAL, then EOF")
}

// A client whose writer still holds bytes (a full socket: the rest goes out later) parks
// with its net.Conn and its writer, which keeps them.
func TestParkedClientKeepsAWriterWithBytes(t *testing.T) {
	s, _ := parkingSession(t)
	t.Cleanup(func() { s.home().unpark(s) })
	require.NoError(t, s.wr.Write(wire.ReadyForQuery(nil, 'I')))
	require.True(t, s.park())
	require.NotNil(t, s.wr)
	require.Equal(t, 6, s.wr.Buffered(), "its bytes stay")
	require.Less(t, s.rawFD, int32(0), "not detached")
}
