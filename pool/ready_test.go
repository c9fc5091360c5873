package pool_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
)

// heldLogin is a server that takes one connection and reads its StartupMessage, then says
// nothing (as a hung server whose kernel still completes connections) until the test
// calls answer: it then logs the connection in. Its connection closes when the test ends.
func heldLogin(t *testing.T) (port int, answer func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	release, ended := make(chan struct{}), make(chan struct{})
	conns := make(chan net.Conn, 1)
	go func() {
		defer close(ended)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		conns <- nc
		var n [4]byte
		if _, err := io.ReadFull(nc, n[:]); err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(n[:]))-4); err != nil {
			return
		}
		<-release
		_, _ = nc.Write(wire.ReadyForQuery(wire.Auth(nil, wire.AuthOK, nil), 'I'))
		_, _ = io.Copy(io.Discard, nc) // until the pool or the cleanup closes it
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case nc := <-conns:
			nc.Close()
		default:
		}
		select {
		case <-release:
		default:
			close(release)
		}
		<-ended
	})
	return ln.Addr().(*net.TCPAddr).Port, func() { close(release) }
}

// TestCheckBoundedByCtx: Check's login of a new connection (the pool has none idle) ends
// at ctx's deadline, whatever server_connect_timeout says: the dial's own bound is
// server_connect_timeout (15 s by default), and a readiness probe with a 2 s limit waited
// for all of it, so /readyz gave no answer at all against a server that accepts
// connections and never answers them. The login goes on without the check, and the
// connection it makes serves the pool's next client.
func TestCheckBoundedByCtx(t *testing.T) {
	t.Parallel()
	port, answer := heldLogin(t)
	p := newPool(t, pool.Options{Size: 1, ConnectTimeout: time.Minute,
		Target: func() *pool.Target {
			return &pool.Target{Host: "127.0.0.1", Port: port, Database: "app", User: "app"}
		}})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Check(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(wait):
		t.Fatalf("Check did not return within %v of its ctx's 200ms deadline", wait)
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "no server login within")

	// The server answers now: the login the check left goes on, into the pool.
	answer()
	eventually(t, func() bool { st := p.Stats(); return st.Idle == 1 && st.Connects == 1 },
		"the login Check left behind should put its connection in the pool")
}

// TestClosedPoolLeavesCluster: a pool closed while it dials a cluster's host is not left
// among the cluster's followers when the dial ends. Close unfollows the cluster, and the
// dial, ending after it, followed it again: the closed pool stayed referenced by the
// cluster for the cluster's life. A client's dial on a pool a RELOAD replaced did that
// once; /readyz's check pool, closed as soon as its check gives up on the login, would
// do it on every probe of a multi-host database whose server hangs.
func TestClosedPoolLeavesCluster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dial func(p *pool.Pool) // returns while the pool dials
	}{
		{"client", func(p *pool.Pool) {
			go func() { _, _ = p.Acquire(context.Background(), newLessee()) }()
			eventually(t, func() bool { return p.Stats().Total == 1 }, "the client's dial should begin")
		}},
		{"check", func(p *pool.Pool) {
			_ = p.Check(ctxFor(t, 50*time.Millisecond)) // gives up on the login, which goes on
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, _ := heldLogin(t)
			cl := pool.NewCluster(pool.ClusterOptions{Endpoints: []pool.Endpoint{{Host: "127.0.0.1", Port: port}}})
			p, err := pool.New(pool.Options{Size: 1, ConnectTimeout: 500 * time.Millisecond,
				Target: func() *pool.Target { return &pool.Target{Cluster: cl, Database: "app", User: "app"} }})
			require.NoError(t, err)
			tc.dial(p)
			p.Close()
			eventually(t, p.Ended, "the dial should end within server_connect_timeout")
			require.Zero(t, cl.FollowersForTest(), "a closed pool must not follow the cluster")
		})
	}
}
