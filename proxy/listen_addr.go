package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// resolveTimeout bounds the lookup of the host names in listen_addr at start.
const resolveTimeout = 30 * time.Second

// Listen opens the TCP listeners and the unix socket named by the configuration.
//
// Every address of listen_addr is bound, as PgBouncer binds what getaddrinfo gives it:
// "*" is 0.0.0.0 and ::, a host name each address it resolves to. A failure to bind one
// is an error naming it, except an address this host does not have or an address family
// it does not support, while others can be bound: "*", "localhost" or "127.0.0.1,::1" on
// a host without IPv6 serve IPv4, with a warning, as in PgBouncer. (PgBouncer also serves
// the others when an address is in use; pgmux does not start half-listening beside
// another process holding the port.)
func (s *Server) Listen() error {
	cfg := s.Config()
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, err := tcpAddrs(ctx, cfg.ListenAddr, cfg.ListenPort)
	if err != nil {
		return err
	}
	var lns []net.Listener
	var unavailable []error
	lc := listenConfig()
	for _, ap := range addrs {
		ln, err := lc.Listen(ctx, tcpNetwork(ap), ap.String())
		if err != nil && len(addrs) > 1 && addrUnavailable(err) {
			unavailable = append(unavailable, fmt.Errorf("listen on %s: %w", ap, err))
			continue
		}
		if err != nil {
			closeAll(lns)
			return fmt.Errorf("listen on %s: %w", ap, err)
		}
		lns = append(lns, rawAccepting(ln))
	}
	if len(lns) == 0 && len(unavailable) > 0 {
		return fmt.Errorf("listen: no address of listen_addr %s can be bound: %w",
			strings.Join(cfg.ListenAddr, ","), errors.Join(unavailable...))
	}
	for _, err := range unavailable {
		s.log.Warn("listen address not available on this host; serving the others", zap.Error(err))
	}
	var unixErr error
	if cfg.UnixSocketDir != "" {
		path := filepath.Join(cfg.UnixSocketDir, ".s.PGSQL."+strconv.Itoa(cfg.ListenPort))
		_ = os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			unixErr = fmt.Errorf("listen on unix socket %s: %w", path, err)
		} else {
			if cfg.UnixSocketMode != 0 {
				_ = os.Chmod(path, os.FileMode(cfg.UnixSocketMode))
			}
			lns = append(lns, ln)
		}
	}
	if unixErr != nil {
		if len(lns) == 0 {
			return unixErr // the only address configured could not be bound
		}
		s.log.Warn("cannot listen on unix socket; serving the TCP addresses", zap.Error(unixErr))
	}
	if len(lns) == 0 {
		return errors.New("no listen address: set listen_addr or unix_socket_dir")
	}
	if err := s.listenHTTP(cfg.MetricsAddr); err != nil {
		closeAll(lns)
		return err
	}
	s.mu.Lock()
	s.listeners = lns
	s.mu.Unlock()
	return nil
}

// tcpAddrs expands listen_addr (hosts) into the addresses to bind: "*" is 0.0.0.0 and ::,
// a literal is itself, a host name every address it resolves to ("localhost": 127.0.0.1
// and ::1 where /etc/hosts says so; "fly-local-6pn": the Machine's private IPv6). An
// address named twice ("localhost,127.0.0.1") is bound once, and one its family's
// wildcard covers is not bound beside it.
func tcpAddrs(ctx context.Context, hosts []string, port int) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	add := func(a netip.Addr) {
		if ap := netip.AddrPortFrom(a.Unmap(), uint16(port)); !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	for _, h := range hosts {
		if h == "*" {
			add(netip.IPv4Unspecified())
			add(netip.IPv6Unspecified())
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			add(a)
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
		if err != nil {
			return nil, fmt.Errorf("listen_addr %s: %w", h, err)
		}
		for _, a := range ips {
			add(a)
		}
	}
	// A wildcard covers every address of its family: "*,127.0.0.1", which PgBouncer
	// serves (its bind of 127.0.0.1 fails against its own 0.0.0.0, with a warning),
	// binds the wildcard alone here, where that failure would stop the start.
	return slices.DeleteFunc(out, func(ap netip.AddrPort) bool {
		a := ap.Addr()
		if a.IsUnspecified() {
			return false
		}
		wild := netip.IPv6Unspecified()
		if a.Is4() {
			wild = netip.IPv4Unspecified()
		}
		return slices.Contains(out, netip.AddrPortFrom(wild, ap.Port()))
	}), nil
}

// tcpNetwork is the network to bind ap on: IPv6 addresses take IPv6 only, as in
// PgBouncer (IPV6_V6ONLY), so that "0.0.0.0,::" or "127.0.0.1,::" bind both, and "::"
// alone does not answer on IPv4.
func tcpNetwork(ap netip.AddrPort) string {
	if ap.Addr().Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// addrUnavailable reports an address this host does not have (EADDRNOTAVAIL), or an
// address family it does not support (no IPv6).
func addrUnavailable(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}
