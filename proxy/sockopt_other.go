//go:build !linux

package proxy

import "net"

// listenConfig is the configuration of the client listeners: Go's defaults, which set
// keepalive on each accepted connection (sockopt_linux.go sets it once on the listener).
func listenConfig() net.ListenConfig { return net.ListenConfig{} }
