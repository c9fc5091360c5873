//go:build linux

package proxy

import (
	"net"
	"strings"
	"syscall"
)

// Client keepalive as Go sets it on each accepted connection by default (15 s idle, 15 s
// between probes, 9 probes), set once on the listening socket instead: Linux copies
// SO_KEEPALIVE and the three TCP keepalive values to every socket accept returns
// (TestAcceptedSocketsKeepAlive checks it). Go's own setting is four setsockopt calls per
// accepted client, each through the runtime's blocking-syscall path, where a login storm
// made the runtime start new OS threads (sysmon hands the P of a thread caught in a
// syscall to another thread).
const (
	keepAliveIdleSecs     = 15
	keepAliveIntervalSecs = 15
	keepAliveCount        = 9
)

// listenConfig is the configuration of the client listeners.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1, Control: listenerKeepAlive}
}

// listenerKeepAlive turns keepalive on for a TCP listening socket (Control of
// net.ListenConfig); other sockets are left alone.
func listenerKeepAlive(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var err error
	cerr := c.Control(func(fd uintptr) {
		for _, o := range [...]struct{ level, opt, v int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdleSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveIntervalSecs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		} {
			if e := syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v); e != nil && err == nil {
				err = e
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
