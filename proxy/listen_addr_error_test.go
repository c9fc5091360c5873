package proxy

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestListenFailureNamesAddress: a listen error names an IPv6 address in brackets, and
// when the unix socket is the only address configured, its bind error is the error, not
// "no listen address".
func TestListenFailureNamesAddress(t *testing.T) {
	newServer := func(t *testing.T, set func(*config.Config)) *Server {
		cfg := config.Default()
		cfg.MetricsAddr = ""
		set(cfg)
		srv, err := New(Options{Config: cfg})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}

	// An IPv6 address already in use (or, on a host without IPv6, not available).
	port := 0
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer ln.Close()
		port = ln.Addr().(*net.TCPAddr).Port
	} else {
		port = 1 // any port: the address itself fails
	}
	srv := newServer(t, func(c *config.Config) {
		c.ListenAddr, c.ListenPort, c.UnixSocketDir = []string{"::1"}, port, ""
	})
	err := srv.Listen()
	require.ErrorContains(t, err, "listen on [::1]:"+strconv.Itoa(port)+": ")

	missing := filepath.Join(t.TempDir(), "no-such-dir")
	srv = newServer(t, func(c *config.Config) {
		c.ListenAddr, c.ListenPort, c.UnixSocketDir = nil, 6432, missing
	})
	err = srv.Listen()
	require.ErrorContains(t, err, "listen on unix socket "+filepath.Join(missing, ".s.PGSQL.6432")+": ")
	require.ErrorContains(t, err, "no such file or directory")
}
