package proxy

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

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

// TestListenAddrsAsPgBouncer: listen_addr binds what PgBouncer binds. "*" is 0.0.0.0 and
// ::, an IPv6 address takes IPv6 only, so "0.0.0.0,::" and "127.0.0.1,::" (common
// PgBouncer lists) bind both instead of failing with "address already in use" on the
// second, and "::" alone does not answer on IPv4; an address named twice is bound once;
// a host name binds each of its addresses; one address in use fails the start, naming
// it, and leaves nothing bound.
func TestListenAddrsAsPgBouncer(t *testing.T) {
	v6 := true
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		v6 = false // no IPv6 here: the IPv6 addresses are skipped with a warning
	} else {
		ln.Close()
	}
	free := func() int {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	listen := func(t *testing.T, addrs []string, port int) (*Server, error) {
		cfg := config.Default()
		cfg.MetricsAddr, cfg.UnixSocketDir, cfg.ListenAddr, cfg.ListenPort = "", "", addrs, port
		srv, err := New(Options{Config: cfg})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		return srv, srv.Listen()
	}
	bound := func(srv *Server) []string {
		var out []string
		for _, a := range srv.Addrs() {
			out = append(out, a.String())
		}
		return out
	}
	dials := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	ip := netip.MustParseAddr
	localhost, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	require.NoError(t, err)
	var byName []netip.Addr // localhost's addresses, then 127.0.0.1 unless among them
	for _, a := range append(localhost, ip("127.0.0.1")) {
		if !slices.Contains(byName, a.Unmap()) {
			byName = append(byName, a.Unmap())
		}
	}
	for _, tt := range []struct {
		name string
		addr []string
		want []netip.Addr // without IPv6 here, the IPv6 ones are left out
	}{
		{"all", []string{"*"}, []netip.Addr{ip("0.0.0.0"), ip("::")}},
		{"both wildcards", []string{"0.0.0.0", "::"}, []netip.Addr{ip("0.0.0.0"), ip("::")}},
		{"loopback and v6 wildcard", []string{"127.0.0.1", "::"}, []netip.Addr{ip("127.0.0.1"), ip("::")}},
		{"named twice", []string{"127.0.0.1", "::1", "127.0.0.1", "0:0:0:0:0:0:0:1"}, []netip.Addr{ip("127.0.0.1"), ip("::1")}},
		{"host name", []string{"localhost", "127.0.0.1"}, byName},
		// A wildcard covers its family's addresses: PgBouncer tries them, warns that each
		// is in use (its own wildcard socket) and serves; pgmux binds the wildcard alone.
		{"wildcard and loopback", []string{"*", "127.0.0.1", "::1"}, []netip.Addr{ip("0.0.0.0"), ip("::")}},
		{"loopback before its wildcard", []string{"127.0.0.1", "0.0.0.0", "::1"}, []netip.Addr{ip("0.0.0.0"), ip("::1")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := free()
			var want []string
			for _, a := range tt.want {
				if v6 || a.Is4() {
					want = append(want, netip.AddrPortFrom(a, uint16(port)).String())
				}
			}
			srv, err := listen(t, tt.addr, port)
			require.NoError(t, err)
			require.Equal(t, want, bound(srv))
		})
	}

	t.Run("v6 wildcard is IPv6 only", func(t *testing.T) {
		if !v6 {
			t.Skip("no IPv6 on this host")
		}
		port := free()
		_, err := listen(t, []string{"::"}, port)
		require.NoError(t, err)
		require.True(t, dials("[::1]:"+strconv.Itoa(port)))
		require.False(t, dials("127.0.0.1:"+strconv.Itoa(port)), "as PgBouncer: :: is not 0.0.0.0 too")
	})

	t.Run("one address in use", func(t *testing.T) {
		taken, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer taken.Close()
		port := taken.Addr().(*net.TCPAddr).Port
		_, err = listen(t, []string{"127.0.0.2", "127.0.0.1"}, port)
		require.ErrorContains(t, err, "listen on 127.0.0.1:"+strconv.Itoa(port)+": ")
		require.ErrorIs(t, err, syscall.EADDRINUSE)
		require.False(t, dials("127.0.0.2:"+strconv.Itoa(port)), "the address bound before is closed")
	})
}
