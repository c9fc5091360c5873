//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/wire"
)

// tcpPair returns both ends of a loopback TCP connection: the one pgmux would accept and
// the client's.
func tcpPair(t *testing.T) (accepted, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	accepted, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return accepted, client
}

func parkingSession(t *testing.T) (*Session, net.Conn) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	log := zap.NewNop()
	srv := &Server{log: log, parker: newParker(log, done)}
	require.NotNil(t, srv.parker)
	accepted, client := tcpPair(t)
	s := newSession(srv, accepted, 1)
	require.True(t, s.canPark())
	return s, client
}

// A parked client keeps its socket's descriptor and nothing of its net.Conn, which is
// what an idle client costs most (the netFD, its addresses, the runtime's poll
// descriptor). The socket stays open: the client's addresses are still known, a FATAL
// still reaches it, and the session talks to it again once resumed.
func TestParkedClientKeepsOnlyItsDescriptor(t *testing.T) {
	s, client := parkingSession(t)
	accepted := s.nc
	require.True(t, s.park())
	require.IsType(t, detachedConn{}, s.nc)
	require.GreaterOrEqual(t, s.rawFD, int32(0))
	_, err := accepted.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed, "the net.Conn is closed while parked")
	require.Equal(t, client.LocalAddr().String(), s.remote().String())
	require.Equal(t, client.RemoteAddr().String(), s.localAddr().String())

	// A message from the client: the parker would resume the session; do its part here.
	require.True(t, s.srv.parker.unpark(s))
	s.reattach()
	require.IsType(t, &net.TCPConn{}, s.nc)
	require.Equal(t, int32(-1), s.rawFD)
	_, err = client.Write(wire.Query(nil, "SELECT 1"))
	require.NoError(t, err)
	typ, n, err := s.rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	_, err = s.rd.Message(n)
	require.NoError(t, err)
	require.NoError(t, s.wr.Write([]byte{'Z', 0, 0, 0, 5, 'I'}))
	require.NoError(t, s.wr.Flush())
	got := make([]byte, 6)
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, []byte{'Z', 0, 0, 0, 5, 'I'}, got)
	require.Equal(t, client.LocalAddr().String(), s.remote().String())

	// Parked again and killed (KILL, shutdown): the FATAL goes out on the descriptor and
	// the socket closes.
	require.True(t, s.park())
	fatal := []byte{'E', 0, 0, 0, 4}
	s.writeOut(fatal)
	s.srv.parker.unpark(s) // as if the parker had fired: closeAndWake must not resume
	s.closeAndWake()
	require.Equal(t, int32(-1), s.rawFD)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	all, err := io.ReadAll(client)
	require.NoError(t, err, "the client sees its FATAL, then EOF")
	require.Equal(t, fatal, all)
	s.reattach() // a resume after the close finds a closed connection
	_, _, err = s.rd.Next()
	require.True(t, errors.Is(err, net.ErrClosed), "%v", err)
	require.False(t, s.park(), "a closed client is not parked again")
}

// A client closed by another goroutine before it parks is not parked: its descriptor
// number may already belong to a new connection.
func TestClosedClientIsNotParked(t *testing.T) {
	s, _ := parkingSession(t)
	s.closeAndWake()
	require.False(t, s.park())
	require.Equal(t, int32(-1), s.rawFD)
}

// The Session struct is most of what a parked client holds on the heap; it must not grow
// into the next allocation size class unnoticed (bench/README.md: idle memory).
func TestSessionSizeBounded(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Session{}), uintptr(896), "Session grew past its 896-byte size class")
}
