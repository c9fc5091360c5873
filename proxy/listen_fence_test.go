package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
)

// fakeListener is a listener whose connection is in memory: the test plays the server
// through srv (what the listener's Pump reads) and sees pgmux's writes in sent.
type fakeListener struct {
	l    *listener
	srv  *io.PipeWriter
	mu   sync.Mutex
	sent bytes.Buffer
	pump chan error
}

func (f *fakeListener) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent.Write(p)
}

// syncs counts the Syncs pgmux sent.
func (f *fakeListener) syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Count(f.sent.Bytes(), syncMsg[:])
}

func startFakeListener(t *testing.T) *fakeListener {
	rd, wr := io.Pipe()
	f := &fakeListener{srv: wr, pump: make(chan error, 1)}
	c := &pool.Conn{Rd: wire.NewReader(rd), Wr: wire.NewWriter(f)}
	f.l = &listener{conn: c, subs: make(map[string]map[*Session]struct{}), pending: make(map[string]int),
		log: zap.NewNop()}
	go func() { f.pump <- f.l.Pump(c) }()
	t.Cleanup(func() {
		f.l.mu.Lock()
		f.l.closed = true // no reconnect after the pipe closes
		f.l.mu.Unlock()
		_ = wr.Close()
		<-f.pump
	})
	return f
}

// send plays server messages: a NotificationResponse on channel ch, or ReadyForQuery.
func (f *fakeListener) notification(t *testing.T, ch, payload string) {
	b, start := wire.Begin(nil, 'A')
	b = append(b, 0, 0, 0, 7)
	b = wire.AppendString(b, ch)
	b = wire.AppendString(b, payload)
	_, err := f.srv.Write(wire.Finish(b, start))
	require.NoError(t, err)
}

func (f *fakeListener) ready(t *testing.T) {
	_, err := f.srv.Write(wire.ReadyForQuery(nil, 'I'))
	require.NoError(t, err)
}

func isDone(f *fence) bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func waitDoneFence(t *testing.T, f *fence) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("fence not done")
	}
}

// TestFencesCoalesce: requests asking while a fence is in flight share the next one,
// sent when the first is answered; notifications read before a fence's answer are in
// the listening client's box when the fence is done, and awaitFence writes them.
func TestFencesCoalesce(t *testing.T) {
	f := startFakeListener(t)
	client, peer := net.Pipe()
	t.Cleanup(func() { _ = client.Close(); _ = peer.Close() })
	var out bytes.Buffer
	s := &Session{nc: client, wr: wire.NewWriter(&out)}
	f.l.subs["ch"] = map[*Session]struct{}{s: {}}

	first := f.l.fenceFor()
	require.NotNil(t, first)
	require.Equal(t, 1, f.syncs())
	next := f.l.fenceFor()
	require.NotNil(t, next)
	require.NotSame(t, first, next, "a request arriving while a fence is in flight waits for the next")
	for range 10 {
		require.Same(t, next, f.l.fenceFor(), "requests asking meanwhile share one fence")
	}
	require.Equal(t, 1, f.syncs(), "the next fence goes out when the first is answered")

	s.wmu.Lock() // the client's writer is busy: notifications wait in its box
	f.notification(t, "ch", "hello")
	f.ready(t)
	waitDoneFence(t, first)
	require.Eventually(t, func() bool { return f.syncs() == 2 }, 10*time.Second, time.Millisecond)
	require.False(t, isDone(next))
	require.Len(t, s.notifyBox().q, 1, "the notification read before the fence's answer")
	s.notifyBox().fence.Store(first)
	s.awaitFence()
	s.wmu.Unlock()
	require.Contains(t, out.String(), "hello")
	require.Empty(t, s.notifyBox().q)

	f.ready(t)
	waitDoneFence(t, next)
	require.Equal(t, 2, f.syncs(), "12 requests, two round trips")
}

// TestFenceNotWaitedFor: no fence while the listener is not connected; one stuck past
// fenceWait is not waited for by later requests; a lost connection ends the fences in
// flight and the one asked for meanwhile.
func TestFenceNotWaitedFor(t *testing.T) {
	require.Nil(t, (&listener{}).fenceFor(), "no connection: nothing to wait for")

	f := startFakeListener(t)
	stuck := f.l.fenceFor()
	require.NotNil(t, stuck)
	f.l.mu.Lock()
	f.l.fenceCur.sent = time.Now().Add(-2 * fenceWait)
	f.l.mu.Unlock()
	require.Nil(t, f.l.fenceFor(), "the listener connection is stuck: not waited for")

	f.l.mu.Lock()
	f.l.fenceCur.sent = time.Now()
	f.l.closed = true // no reconnect
	f.l.mu.Unlock()
	next := f.l.fenceFor()
	require.Nil(t, next, "a closed listener has no fences")
	f.l.mu.Lock()
	f.l.closed = false
	f.l.mu.Unlock()
	next = f.l.fenceFor()
	require.NotNil(t, next)
	f.l.mu.Lock()
	f.l.closed = true
	f.l.mu.Unlock()
	require.NoError(t, f.srv.CloseWithError(io.ErrUnexpectedEOF))
	require.Error(t, <-f.pump)
	f.pump <- nil // for the cleanup
	waitDoneFence(t, stuck)
	waitDoneFence(t, next)
	require.Nil(t, f.l.fenceFor())
}

// TestAwaitFenceBounded: a fence that never comes back holds the answer fenceWait at
// most, and the session then forgets it.
func TestAwaitFenceBounded(t *testing.T) {
	client, peer := net.Pipe()
	t.Cleanup(func() { _ = client.Close(); _ = peer.Close() })
	s := &Session{srv: &Server{log: zap.NewNop()}, nc: client, wr: wire.NewWriter(io.Discard), sessionWork: newWork()}
	stuck := &fence{done: make(chan struct{})}
	s.notifyBox().fence.Store(stuck)
	s.wmu.Lock()
	start := time.Now()
	s.awaitFence()
	s.wmu.Unlock()
	require.GreaterOrEqual(t, time.Since(start), fenceWait)
	require.Nil(t, s.notifyBox().fence.Load())
}

// TestAskFenceFirstMessages: a listening client's request asks for one fence, at its
// first message: a Query, a FunctionCall, a Sync alone, or the first extended-protocol
// message before its Sync; Flush and COPY data ask nothing, and a client without
// subscriptions asks nothing. A request refused up to its Sync ends there (skipUntilSync).
func TestAskFenceFirstMessages(t *testing.T) {
	f := startFakeListener(t)
	srv := &Server{log: zap.NewNop()}
	srv.hub = newListenHub(srv)
	entry := &poolEntry{key: poolKey{db: "app", user: "u"}}
	srv.hub.byDB["app"] = f.l
	s := &Session{srv: srv, entry: entry, sessionWork: newWork(), rd: wire.NewReader(bytes.NewReader(syncMsg[:])),
		wr: wire.NewWriter(io.Discard)}
	b := s.notifyBox()

	asks := func(msgs string) int {
		t.Helper()
		n := 0
		for i := range len(msgs) {
			b.fence.Store(nil)
			s.askFence(b, msgs[i])
			if fc := b.fence.Load(); fc != nil {
				n++
				f.ready(t) // answer it, so that the next one is sent at once
				waitDoneFence(t, fc)
			}
		}
		return n
	}
	require.Equal(t, 0, asks("QPBES"), "no subscription: no fence")
	b.channels.Add(1)
	require.Equal(t, 1, asks("Q"))
	require.Equal(t, 1, asks("PDS"), "Parse, Describe, Sync")
	require.Equal(t, 1, asks("BES"))
	require.Equal(t, 1, asks("PDHBEHS"), "Flush inside the request")
	require.Equal(t, 1, asks("Qddc"), "COPY FROM STDIN: its data belongs to the Query")
	require.Equal(t, 2, asks("SF"), "a Sync alone, a FunctionCall")
	require.Equal(t, 1, asks("PB"), "a request refused before its Sync")
	typ, n, err := s.rd.Next()
	require.NoError(t, err)
	skipping, err := s.skipUntilSync(typ, n) // its Sync, answered by pgmux
	require.NoError(t, err)
	require.False(t, skipping)
	require.Equal(t, 1, asks("BES"))
	require.Equal(t, 9, f.syncs())
}
