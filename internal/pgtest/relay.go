package pgtest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Relay listens on a loopback port and relays each connection it accepts to s, for a
// test that must hold a connection before PostgreSQL sees anything of it (a dial left
// pending). hold is called with each connection's number as it is accepted (1 for the
// first); the relay connects to s once the channel it returns is closed (nil: at once).
// It returns the relay's port on 127.0.0.1, and stop, which closes the listener and
// every connection and returns once the relay's goroutines have ended; cleanup calls it
// too (a test registers its own, later, cleanup for it to run before another's).
func (s *Server) Relay(t testing.TB, hold func(n int) <-chan struct{}) (port int, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: relay: %v", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	stop = sync.OnceFunc(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	t.Cleanup(stop)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wait := hold(n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.relay(nc, wait, done)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, stop
}

// relay waits for wait (nil: not at all), then copies between nc and a new connection to
// s both ways until either side ends or done is closed.
func (s *Server) relay(nc net.Conn, wait <-chan struct{}, done <-chan struct{}) {
	defer nc.Close()
	if wait != nil {
		select {
		case <-wait:
		case <-done:
			return
		}
	}
	up, err := net.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return
	}
	defer up.Close()
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		select {
		case <-done:
		case <-ended:
		}
		nc.Close()
		up.Close()
	}()
	go func() { _, _ = io.Copy(up, nc); up.Close() }()
	_, _ = io.Copy(nc, up)
}
