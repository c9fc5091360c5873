//go:build !linux

package proxy

import "net"

// rawAccepting: accepting with raw system calls is done on Linux only (accept_linux.go).
func rawAccepting(ln net.Listener) net.Listener { return ln }

// lendLoop: no client loops here (acceptloop_linux.go).
func (s *Server) lendLoop(net.Listener) bool { return false }
