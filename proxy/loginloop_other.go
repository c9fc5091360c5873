//go:build !linux

package proxy

import "net"

// Logins run on goroutines here: there are no client loops (loginloop_linux.go).

// loopLogin is never made here.
type loopLogin struct{ writing, answered bool }

func (s *Server) acceptNext(ln net.Listener) (net.Conn, int, error) {
	nc, err := ln.Accept()
	return nc, -1, err
}

func closeAccepted(nc net.Conn, _ int) { _ = nc.Close() }

// loginOnLoop is never reached: acceptNext returns no bare descriptor here.
func (s *Server) loginOnLoop(int) {}

// offload runs work at once: logins run on goroutines.
func (s *Session) offload(work func()) { work() }

// rawClient: no client waits without a net.Conn here.
func (s *Session) rawClient() bool { return false }

// closeLoginFD: no client is without a net.Conn here.
func (s *Session) closeLoginFD() bool { return false }

// shutRawLocked: no client is without a net.Conn here.
func (s *Session) shutRawLocked() bool { return false }

// toRuntimeConn is never reached (rawClient is false).
func (s *Session) toRuntimeConn() error { return nil }

// servedOnLoop: no client is without a net.Conn here.
func (s *Session) servedOnLoop() {}
