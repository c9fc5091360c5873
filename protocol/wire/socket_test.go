package wire

import (
	"crypto/tls"
	"net"
	"testing"

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
