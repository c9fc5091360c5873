package wire

import (
	"errors"
	"net"
	"syscall"
)

// ErrNoSocket is returned by ControlSocket for a connection without a descriptor (or
// whose descriptor cannot be reached).
var ErrNoSocket = errors.New("connection has no socket descriptor")

// RawSocket returns the raw descriptor access of nc's socket, the one under TLS when nc
// is a TLS connection (tls is then true), for a caller that keeps it to run Control
// many times without the allocation each SyscallConn makes.
func RawSocket(nc net.Conn) (rc syscall.RawConn, tls bool, err error) {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc, tls = u.NetConn(), true
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, tls, ErrNoSocket
	}
	rc, err = sc.SyscallConn()
	if err != nil {
		return nil, tls, ErrNoSocket
	}
	return rc, tls, nil
}

// ControlSocket runs f with the descriptor of nc's socket, the one under TLS when nc is a
// TLS connection (tls is then true). f must not block or keep the descriptor; an error
// means nc has no socket, or it was closed under the call.
func ControlSocket(nc net.Conn, f func(fd int)) (tls bool, err error) {
	rc, tls, err := RawSocket(nc)
	if err != nil {
		return tls, err
	}
	return tls, rc.Control(func(fd uintptr) { f(int(fd)) })
}
