//go:build linux

package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// The client listener carries keepalive, and every socket it accepts has it with Go's
// default values (what Go set per accepted connection before) without a setsockopt of
// its own: the kernel copies the listener's options. TCP_NODELAY Go still sets itself.
func TestAcceptedSocketsKeepAlive(t *testing.T) {
	cfg := config.Default()
	cfg.ListenAddr = []string{"127.0.0.1"}
	cfg.ListenPort = 0
	cfg.UnixSocketDir = ""
	srv, err := New(Options{Config: cfg, Version: "test"})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	t.Cleanup(func() { _ = srv.Close() })
	ln := srv.listeners[0]
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	c := <-accepted
	require.NotNil(t, c)
	defer c.Close()

	opts := func(sc syscall.Conn) map[string]int {
		raw, err := sc.SyscallConn()
		require.NoError(t, err)
		got := map[string]int{}
		require.NoError(t, raw.Control(func(fd uintptr) {
			for name, o := range map[string][2]int{
				"keepalive": {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
				"idle":      {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
				"interval":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
				"count":     {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
				"nodelay":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY},
			} {
				v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
				require.NoError(t, err)
				got[name] = v
			}
		}))
		return got
	}
	require.Equal(t, 1, opts(ln.(syscall.Conn))["keepalive"], "set once on the listener")
	want := map[string]int{"keepalive": 1, "idle": keepAliveIdleSecs, "interval": keepAliveIntervalSecs,
		"count": keepAliveCount, "nodelay": 1}
	require.Equal(t, want, opts(c.(syscall.Conn)), "the accepted socket inherits it")
	require.IsType(t, acceptedConn{}, c, "accepted with raw system calls (accept_linux.go)")
}

// TestRawListenerClosed: Accept on a closed listener fails with net.ErrClosed, as net's
// does (Server.accept ends on it).
func TestRawListenerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rl := rawAccepting(ln)
	require.IsType(t, rawListener{}, rl)
	done := make(chan error, 1)
	go func() { _, err := rl.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond) // Accept waits in the poller
	require.NoError(t, rl.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not end when its listener closed")
	}
	_, err = rl.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}
