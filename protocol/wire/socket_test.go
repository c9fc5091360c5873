package wire

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestControlSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	got := -1
	isTLS, err := ControlSocket(c, func(fd int) { got = fd })
	require.NoError(t, err)
	require.False(t, isTLS)
	require.Greater(t, got, 0)

	got = -1
	isTLS, err = ControlSocket(tls.Client(c, &tls.Config{}), func(fd int) { got = fd })
	require.NoError(t, err)
	require.True(t, isTLS, "the socket under TLS")
	require.Greater(t, got, 0)

	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	_, err = ControlSocket(p1, func(int) { t.Fatal("a pipe has no descriptor") })
	require.ErrorIs(t, err, ErrNoSocket)

	require.NoError(t, c.Close())
	_, err = ControlSocket(c, func(int) {})
	require.Error(t, err, "closed under the call")
	require.NotErrorIs(t, err, ErrNoSocket)
}

// fileSocket is a socket under an *os.File that says it is one (Socket), as pgmux's
// resumed clients are.
type fileSocket struct{ *os.File }

func (fileSocket) PollableSocket() {}

// TestSocketInterfaceTakesTheDescriptorPath: a Reader and a Writer over a Socket that is
// neither a *net.TCPConn nor a *net.UnixConn read and write by the descriptor (raw set),
// and the bytes pass both ways; a plain *os.File (which may block) keeps the ordinary path.
func TestSocketInterfaceTakesTheDescriptorPath(t *testing.T) {
	a, b := tcpPair(t)
	f, err := b.(*net.TCPConn).File() // a duplicate (blocking, as File leaves it)
	require.NoError(t, err)
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	require.NoError(t, err)
	require.NoError(t, syscall.SetNonblock(fd, true))
	f2 := os.NewFile(uintptr(fd), "socket") // non-blocking: in the runtime's poller, as proxy's resume makes it
	defer f2.Close()
	sock := fileSocket{f2}
	rd, wr := NewReader(sock), NewWriter(sock)
	require.NotNil(t, rd.raw, "the Reader reads by the descriptor")
	require.NotNil(t, wr.raw, "the Writer writes by the descriptor")
	require.Nil(t, NewReader(f).raw, "a plain *os.File keeps the ordinary path")

	_, err = a.Write(Query(nil, "SELECT 1"))
	require.NoError(t, err)
	typ, n, err := rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	m, err := rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, Query(nil, "SELECT 1"), m)
	require.NoError(t, wr.Write(ReadyForQuery(nil, 'I')))
	require.NoError(t, wr.Flush())
	got := make([]byte, 6)
	require.NoError(t, a.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(a, got)
	require.NoError(t, err)
	require.Equal(t, ReadyForQuery(nil, 'I'), got)
}

// TestSetSourceKeepsBuffered: a reader moved to another source for the same stream (a
// client that logged in on a loop getting its net.Conn) keeps the bytes it holds, reads
// them first, and then reads the new source by its descriptor.
func TestSetSourceKeepsBuffered(t *testing.T) {
	a, b := tcpPair(t)
	src, dst := net.Pipe()
	defer src.Close()
	defer dst.Close()
	rd := NewReader(dst)
	require.Nil(t, rd.raw)
	two := append(Query(nil, "SELECT 1"), Query(nil, "SELECT 2")...)
	go func() { _, _ = src.Write(two) }()
	typ, n, err := rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	_, err = rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, len(Query(nil, "SELECT 2")), rd.Buffered(), "the second query came in the same read")

	rd.SetSource(b)
	require.NotNil(t, rd.raw, "the new source's descriptor path")
	require.Equal(t, len(Query(nil, "SELECT 2")), rd.Buffered(), "what was buffered stays")
	_, err = a.Write(Query(nil, "SELECT 3"))
	require.NoError(t, err)
	for _, want := range []string{"SELECT 2", "SELECT 3"} {
		typ, n, err := rd.Next()
		require.NoError(t, err)
		require.Equal(t, byte('Q'), typ)
		m, err := rd.Message(n)
		require.NoError(t, err)
		require.Equal(t, Query(nil, want), m)
	}
	require.Zero(t, rd.Buffered())
}
