package wire

import (
	"errors"
	"net"
	"syscall"
)

// ErrNoSocket is returned by ControlSocket for a connection without a descriptor (or
// whose descriptor cannot be reached).
var ErrNoSocket = errors.New("connection has no socket descriptor")

// ControlSocket runs f with the descriptor of nc's socket, the one under TLS when nc is a
// TLS connection (tls is then true). f must not block or keep the descriptor; an error
// means nc has no socket, or it was closed under the call.
func ControlSocket(nc net.Conn, f func(fd int)) (tls bool, err error) {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc, tls = u.NetConn(), true
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return tls, ErrNoSocket
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return tls, ErrNoSocket
	}
	return tls, rc.Control(func(fd uintptr) { f(int(fd)) })
}
