// Package evloop is the driver of pgmux's client loops (package proxy's parker): an
// epoll set that a goroutine serves, woken by Go's runtime poller rather than blocking a
// thread, an eventfd that wakes it for posted work, and an inbox that any goroutine posts
// to. It knows nothing of clients, servers or the protocol: its Handler is told each
// event, each posted item and a periodic tick, all on the loop's goroutine.
//
// Linux only; elsewhere package proxy serves every client on a goroutine of its own.
package evloop
