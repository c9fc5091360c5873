package listenmux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// fakeListener is a listener whose connection is in memory: the test plays the server
// through srv (what the listener's Pump reads) and sees the listener's writes in sent.
type fakeListener struct {
	l    *Listener
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

// syncs counts the Syncs the listener sent.
func (f *fakeListener) syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Count(f.sent.Bytes(), syncMsg[:])
}

// queries returns the texts of the Queries the listener sent, in order.
func (f *fakeListener) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	b := f.sent.Bytes()
	for len(b) >= 5 {
		n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
		if b[0] == 'Q' {
			out = append(out, strings.TrimSuffix(string(b[5:1+n]), "\x00"))
		}
		b = b[1+n:]
	}
	return out
}

func startFakeListener(t *testing.T) *fakeListener {
	rd, wr := io.Pipe()
	f := &fakeListener{srv: wr, pump: make(chan error, 1)}
	c := &pool.Conn{Rd: wire.NewReader(rd), Wr: wire.NewWriter(f)}
	f.l = newListener("app", Source{User: func() string { return "u" }}, zap.NewNop())
	f.l.conn = c
	go func() { f.pump <- f.l.Pump(c) }()
	f.closeAtEnd(t)
	return f
}

// closeAtEnd closes the listener (no reconnect after the pipe closes) and f's end of the
// pipe when the test ends, and waits for f's Pump.
func (f *fakeListener) closeAtEnd(t *testing.T) {
	t.Cleanup(func() {
		f.l.mu.Lock()
		f.l.closed = true
		f.l.mu.Unlock()
		_ = f.srv.Close()
		<-f.pump
	})
}

// nextConn prepares the listener's next connection: g plays its server, and dial (for
// the listener's acquire hook) makes the connection and starts its Pump.
func nextConn(f *fakeListener) (g *fakeListener, dial func() *pool.Conn) {
	rd, wr := io.Pipe()
	g = &fakeListener{l: f.l, srv: wr, pump: make(chan error, 1)}
	return g, func() *pool.Conn {
		c := &pool.Conn{Rd: wire.NewReader(rd), Wr: wire.NewWriter(g)}
		go func() { g.pump <- f.l.Pump(c) }()
		return c
	}
}

// notification plays a NotificationResponse on channel ch.
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

// subscriber records what the listener hands it.
type subscriber struct {
	mu       sync.Mutex
	got      []string // payloads, in order
	notices  []*pgerr.Error
	order    string // the types of the messages handed, in order
	channels atomic.Int32
	gone     atomic.Bool
	full     atomic.Pointer[chan struct{}] // Backlog's answer, nil: room
}

func (s *subscriber) Notify(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order += string(msg[0])
	body := wire.Body(msg)
	if msg[0] == 'N' {
		pe, _ := pgerr.Parse(body)
		s.notices = append(s.notices, pe)
		return
	}
	_, rest, _ := wire.CString(body[4:])
	payload, _, _ := wire.CString(rest)
	s.got = append(s.got, string(payload))
}

func (s *subscriber) told() ([]*pgerr.Error, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pgerr.Error(nil), s.notices...), s.order
}

func (s *subscriber) Backlog() <-chan struct{} {
	if w := s.full.Load(); w != nil {
		return *w
	}
	return nil
}
func (s *subscriber) Subscribed(delta int32) { s.channels.Add(delta) }
func (s *subscriber) Gone() bool             { return s.gone.Load() }

func (s *subscriber) payloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func isDone(f *Fence) bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func waitDone(t *testing.T, f *Fence) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("fence not done")
	}
}

// TestSubscribeTwoRoundTrips: a subscriber joins only after the second LISTEN's answer,
// so a notification read between the two (committed before its LISTEN) is not its; it
// gets those read after. The last subscriber leaving UNLISTENs; a quoted channel name
// stays one name.
func TestSubscribeTwoRoundTrips(t *testing.T) {
	f := startFakeListener(t)
	a, b := &subscriber{}, &subscriber{}
	ch := `Odd "name"`
	joined := make(chan error, 1)
	go func() { joined <- f.l.Subscribe(context.Background(), a, ch) }()
	require.Eventually(t, func() bool { return len(f.queries()) == 1 }, 10*time.Second, time.Millisecond)
	f.ready(t)
	require.Eventually(t, func() bool { return len(f.queries()) == 2 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{`LISTEN "Odd ""name"""`, `LISTEN "Odd ""name"""`}, f.queries())
	f.notification(t, ch, "before")
	f.ready(t)
	require.NoError(t, <-joined)
	require.EqualValues(t, 1, a.channels.Load())
	f.notification(t, ch, "after")
	f.notification(t, "other", "not yours")
	require.Eventually(t, func() bool { return len(a.payloads()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"after"}, a.payloads())

	// A second subscriber; the first leaving does not UNLISTEN, the second does.
	go func() { joined <- f.l.Subscribe(context.Background(), b, ch) }()
	require.Eventually(t, func() bool { return len(f.queries()) == 3 }, 10*time.Second, time.Millisecond)
	f.ready(t)
	require.Eventually(t, func() bool { return len(f.queries()) == 4 }, 10*time.Second, time.Millisecond)
	f.ready(t)
	require.NoError(t, <-joined)
	f.l.Unsubscribe(a, "")
	require.EqualValues(t, 0, a.channels.Load())
	require.Len(t, f.queries(), 4, "b still listens")
	f.notification(t, ch, "to b")
	require.Eventually(t, func() bool { return len(b.payloads()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"after"}, a.payloads(), "a left")
	f.l.Unsubscribe(b, ch)
	require.Equal(t, `UNLISTEN "Odd ""name"""`, f.queries()[4])
	f.ready(t)
}

// TestSubscriberGoneMeanwhile: a subscriber that left before its LISTEN completed is not
// added, and the LISTEN's error reaches the one subscribing.
func TestSubscriberGoneMeanwhile(t *testing.T) {
	f := startFakeListener(t)
	s := &subscriber{}
	s.gone.Store(true)
	joined := make(chan error, 1)
	go func() { joined <- f.l.Subscribe(context.Background(), s, "ch") }()
	for i := 1; i <= 2; i++ {
		require.Eventually(t, func() bool { return len(f.queries()) == i }, 10*time.Second, time.Millisecond)
		f.ready(t)
	}
	require.NoError(t, <-joined)
	require.EqualValues(t, 0, s.channels.Load())
	f.l.mu.Lock()
	require.Empty(t, f.l.subs["ch"])
	f.l.mu.Unlock()

	// The server refuses the LISTEN: its error is the subscription's.
	go func() { joined <- f.l.Subscribe(context.Background(), &subscriber{}, "ch") }()
	require.Eventually(t, func() bool { return len(f.queries()) == 3 }, 10*time.Second, time.Millisecond)
	b, start := wire.Begin(nil, 'E')
	b = append(b, 'S')
	b = wire.AppendString(b, "ERROR")
	b = append(b, 'C')
	b = wire.AppendString(b, "42601")
	b = append(b, 'M')
	b = wire.AppendString(b, "refused")
	b = wire.Finish(append(b, 0), start)
	_, err := f.srv.Write(b)
	require.NoError(t, err)
	f.ready(t)
	require.ErrorContains(t, <-joined, "refused")
}

// TestFencesCoalesce: requests asking while a fence is in flight share the next one,
// sent when the first is answered; notifications read before a fence's answer were
// handed to their subscribers when the fence is done.
func TestFencesCoalesce(t *testing.T) {
	f := startFakeListener(t)
	s := &subscriber{}
	f.l.subs["ch"] = map[Subscriber]struct{}{s: {}}

	first := f.l.Fence()
	require.NotNil(t, first)
	require.Equal(t, 1, f.syncs())
	next := f.l.Fence()
	require.NotNil(t, next)
	require.NotSame(t, first, next, "a request arriving while a fence is in flight waits for the next")
	for range 10 {
		require.Same(t, next, f.l.Fence(), "requests asking meanwhile share one fence")
	}
	require.Equal(t, 1, f.syncs(), "the next fence goes out when the first is answered")

	f.notification(t, "ch", "hello")
	f.ready(t)
	require.True(t, first.Wait())
	require.Equal(t, []string{"hello"}, s.payloads(), "the notification read before the fence's answer")
	require.Eventually(t, func() bool { return f.syncs() == 2 }, 10*time.Second, time.Millisecond)
	require.False(t, isDone(next))

	f.ready(t)
	waitDone(t, next)
	require.Equal(t, 2, f.syncs(), "12 requests, two round trips")
}

// TestFenceNotWaitedFor: no fence while the listener is not connected; one stuck past
// FenceWait is not waited for by later requests; a lost connection ends the fences in
// flight and the one asked for meanwhile.
func TestFenceNotWaitedFor(t *testing.T) {
	require.Nil(t, newListener("app", Source{}, zap.NewNop()).Fence(), "no connection: nothing to wait for")

	f := startFakeListener(t)
	stuck := f.l.Fence()
	require.NotNil(t, stuck)
	f.l.mu.Lock()
	f.l.fenceCur.sent = time.Now().Add(-2 * FenceWait)
	f.l.mu.Unlock()
	require.Nil(t, f.l.Fence(), "the listener connection is stuck: not waited for")

	f.l.mu.Lock()
	f.l.fenceCur.sent = time.Now()
	f.l.closed = true // no reconnect
	f.l.mu.Unlock()
	require.Nil(t, f.l.Fence(), "a closed listener has no fences")
	f.l.mu.Lock()
	f.l.closed = false
	f.l.mu.Unlock()
	next := f.l.Fence()
	require.NotNil(t, next)
	f.l.mu.Lock()
	f.l.closed = true
	f.l.mu.Unlock()
	require.NoError(t, f.srv.CloseWithError(io.ErrUnexpectedEOF))
	require.Error(t, <-f.pump)
	f.pump <- nil // for the cleanup
	waitDone(t, stuck)
	waitDone(t, next)
	require.Nil(t, f.l.Fence())
}

// TestFenceWaitBounded: a fence that never comes back holds its waiter FenceWait at most.
func TestFenceWaitBounded(t *testing.T) {
	stuck := newFence()
	start := time.Now()
	require.False(t, stuck.Wait())
	require.GreaterOrEqual(t, time.Since(start), FenceWait)
	close(stuck.done)
	require.True(t, stuck.Wait())
}

// TestCloseAllEndsListeners: a closed listener takes no subscription and asks no fence.
// (Closing a real connection is shown by package proxy's shutdown tests.)
func TestCloseAllEndsListeners(t *testing.T) {
	h := NewHub(zap.NewNop())
	f := startFakeListener(t)
	f.l.mu.Lock()
	f.l.conn = nil // between connections: the fake one has no socket to close
	f.l.mu.Unlock()
	h.byDB["app"] = f.l
	require.Same(t, f.l, h.Get("app"))
	require.Same(t, f.l, h.Add("app", Source{}), "Add keeps the listener there is")
	require.Nil(t, h.Get("other"))
	require.Empty(t, h.CloseAll(), "no pool: the fake connection has none")
	err := f.l.Subscribe(context.Background(), &subscriber{}, "ch")
	require.ErrorContains(t, err, "closed")
	require.Nil(t, f.l.Fence())
}

// TestConnectRestoresChannels: after the listener connection is lost, whoever connects
// again — its reconnect, or a new subscriber's LISTEN that gets there first — LISTENs
// again on every channel that has subscribers, so their notifications keep coming. (A
// new subscriber's connection used to carry only its own channel; the soak's LISTEN
// clients then waited out their 30 s after a PostgreSQL restart.)
func TestConnectRestoresChannels(t *testing.T) {
	f := startFakeListener(t)
	a := subscribeAlpha(t, f)

	// The connection was lost (lost leaves conn nil) and another is made, as a new
	// subscriber's command makes it.
	rd, wr := io.Pipe()
	g := &fakeListener{l: f.l, srv: wr, pump: make(chan error, 1)}
	c := &pool.Conn{Rd: wire.NewReader(rd), Wr: wire.NewWriter(g)}
	f.l.mu.Lock()
	f.l.conn = nil
	f.l.connectedLocked(c)
	f.l.mu.Unlock()
	go func() { g.pump <- f.l.Pump(c) }()
	g.closeAtEnd(t)
	require.Equal(t, []string{`LISTEN "alpha"`}, g.queries(), "the channel is listened to again")
	g.ready(t)
	g.notification(t, "alpha", "after the loss")
	require.Eventually(t, func() bool { return len(a.payloads()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"after the loss"}, a.payloads())
}

// The listener comes back quickly after a restart (every notification committed before
// its LISTEN is missed), then backs off to 10 s while the server stays away.
func TestReconnectDelay(t *testing.T) {
	var total time.Duration
	for a := 0; a < 40; a++ {
		require.Equal(t, 50*time.Millisecond, reconnectDelay(a), "attempt %d", a)
		total += reconnectDelay(a)
	}
	require.Equal(t, 2*time.Second, total, "fast attempts for the first two seconds")
	require.Equal(t, 100*time.Millisecond, reconnectDelay(40))
	require.Equal(t, 200*time.Millisecond, reconnectDelay(41))
	for a := 41; a < 1000; a++ {
		d := reconnectDelay(a)
		require.GreaterOrEqual(t, d, reconnectDelay(a-1), "attempt %d", a)
		require.LessOrEqual(t, d, 10*time.Second, "attempt %d", a)
	}
	require.Equal(t, 10*time.Second, reconnectDelay(999))
}

// TestRestoreListensBeforeTheRequest: a subscriber's request after the listener lost its
// connection (a PostgreSQL restart) first has the listener connect and LISTEN again, and
// goes on only once those LISTENs are answered: its own NOTIFY, committed after them, is
// heard. While connected and listening, Restore returns at once.
func TestRestoreListensBeforeTheRequest(t *testing.T) {
	f := startFakeListener(t)
	a := subscribeAlpha(t, f)
	f.l.Restore() // connected, nothing to restore: at once

	// The connection is lost (lost leaves conn nil); the next one is g's.
	g, dial := nextConn(f)
	dialled := make(chan struct{}, 1)
	f.l.mu.Lock()
	f.l.conn = nil
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		c := dial()
		dialled <- struct{}{}
		return c, nil
	}
	f.l.mu.Unlock()
	g.closeAtEnd(t)
	restored := make(chan struct{})
	go func() {
		f.l.Restore()
		close(restored)
	}()
	select {
	case <-dialled:
	case <-time.After(5 * time.Second):
		t.Fatal("Restore did not connect the listener")
	}
	require.Eventually(t, func() bool { return len(g.queries()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{`LISTEN "alpha"`}, g.queries())
	select {
	case <-restored:
		t.Fatal("Restore returned before the LISTEN was answered")
	case <-time.After(100 * time.Millisecond):
	}
	g.ready(t)
	select {
	case <-restored:
	case <-time.After(FenceWait / 2):
		t.Fatal("Restore did not return once the LISTEN was answered")
	}
	f.l.Restore() // listening again: at once
	g.notification(t, "alpha", "after the restart")
	require.Eventually(t, func() bool { return len(a.payloads()) == 1 }, 10*time.Second, time.Millisecond)
}

// subscribeAlpha subscribes a new subscriber to "alpha" on f, playing the server's
// answers to its LISTEN and the fence after it.
func subscribeAlpha(t *testing.T, f *fakeListener) *subscriber {
	a := &subscriber{}
	subscribe(t, f, a, "alpha")
	return a
}

// subscribe subscribes a to ch on f, a channel nobody listens to yet, playing the
// server's answers to its LISTEN and the fence after it.
func subscribe(t *testing.T, f *fakeListener, a *subscriber, ch string) {
	before := len(f.queries())
	joined := make(chan error, 1)
	go func() { joined <- f.l.Subscribe(context.Background(), a, ch) }()
	require.Eventually(t, func() bool { return len(f.queries()) == before+1 }, 10*time.Second, time.Millisecond)
	f.ready(t)
	require.Eventually(t, func() bool { return len(f.queries()) == before+2 }, 10*time.Second, time.Millisecond)
	f.ready(t)
	require.NoError(t, <-joined)
}

// TestLossTold: when the listener's connection breaks, every subscriber is handed one
// WARNING notice (01000) saying notifications may have been missed, once the LISTENs on
// the next connection are answered and before any notification that one carries;
// a subscriber of two channels is told once, and nobody is told while nothing broke.
func TestLossTold(t *testing.T) {
	f := startFakeListener(t)
	a := subscribeAlpha(t, f)
	b := &subscriber{}
	subscribe(t, f, b, "beta")
	subscribe(t, f, b, "gamma")
	f.notification(t, "alpha", "before")
	require.Eventually(t, func() bool { return len(a.payloads()) == 1 }, 10*time.Second, time.Millisecond)
	for _, s := range []*subscriber{a, b} {
		n, _ := s.told()
		require.Empty(t, n, "nothing broke yet")
	}

	g, dial := nextConn(f)
	var gaps atomic.Int32
	f.l.mu.Lock()
	f.l.src.Gap = func() { gaps.Add(1) } // the metric's hook
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		c := dial()
		return c, nil
	}
	f.l.mu.Unlock()
	g.closeAtEnd(t)
	require.NoError(t, f.srv.Close()) // the server is gone: Pump sees the break, reconnect dials g
	require.Eventually(t, func() bool { return len(g.queries()) == 3 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	for _, s := range []*subscriber{a, b} {
		n, _ := s.told()
		require.Empty(t, n, "told only once the channels are listened to again")
	}
	for range 3 {
		g.ready(t)
	}
	g.notification(t, "alpha", "after")
	require.Eventually(t, func() bool { return len(a.payloads()) == 2 }, 10*time.Second, time.Millisecond)
	for name, s := range map[string]*subscriber{"a": a, "b": b} {
		require.Eventually(t, func() bool { n, _ := s.told(); return len(n) > 0 }, 10*time.Second, time.Millisecond, name)
		n, order := s.told()
		require.Len(t, n, 1, "%s is told once", name)
		require.Equal(t, pgerr.SeverityWarning, n[0].Severity)
		require.Equal(t, pgerr.Warning, n[0].Code)
		require.Contains(t, n[0].Message, `notifications may have been missed`)
		require.Contains(t, n[0].Message, `database "app"`)
		require.Contains(t, n[0].Detail, "listened again")
		if s == a {
			require.Equal(t, "ANA", order, "the notice comes between the notifications before and after the gap")
		}
	}
	require.Equal(t, int32(1), gaps.Load(), "one gap counted")
}

// TestSubscribeWaitsForTheServer: a LISTEN that finds the listener connection down (the
// server refusing connections, then starting up) tries again until the connection is
// made and answers then; a login the server refuses for good, or the end of the
// caller's wait, fails it at once.
func TestSubscribeWaitsForTheServer(t *testing.T) {
	f := startFakeListener(t)
	g, dial := nextConn(f)
	var tries atomic.Int32
	f.l.mu.Lock()
	f.l.conn = nil // lost: the server restarts
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		switch tries.Add(1) {
		case 1:
			return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
		case 2:
			return nil, fmt.Errorf("server login: %w", pgerr.Fatal("57P03", "the database system is starting up"))
		}
		c := dial()
		return c, nil
	}
	f.l.mu.Unlock()
	a := &subscriber{}
	joined := make(chan error, 1)
	go func() { joined <- f.l.Subscribe(context.Background(), a, "alpha") }()
	require.Eventually(t, func() bool { return len(g.queries()) == 1 || len(joined) > 0 }, 10*time.Second, time.Millisecond)
	require.Len(t, joined, 0, "the LISTEN ended before the server was back")
	g.closeAtEnd(t) // its Pump runs
	require.Equal(t, int32(3), tries.Load(), "two failed connections, then one made")
	g.ready(t)
	require.Eventually(t, func() bool { return len(g.queries()) == 2 }, 10*time.Second, time.Millisecond)
	g.ready(t)
	require.NoError(t, <-joined)
	require.Equal(t, int32(1), a.channels.Load())

	// A refusal that waiting does not cure fails the LISTEN at once.
	f.l.mu.Lock()
	f.l.conn = nil
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		return nil, fmt.Errorf("server login: %w", pgerr.Fatal("28P01", `password authentication failed for user "u"`))
	}
	f.l.mu.Unlock()
	start := time.Now()
	err := f.l.Subscribe(context.Background(), &subscriber{}, "beta")
	require.ErrorContains(t, err, "28P01")
	require.Less(t, time.Since(start), subscribeRetry, "not retried")

	// Down for longer than the caller waits: the wait's end, with the last failure.
	f.l.mu.Lock()
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	f.l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	err = f.l.Subscribe(ctx, &subscriber{}, "gamma")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "connection refused")

	// The same when the wait ends during an attempt (a slow dial on a loaded machine):
	// not the failure alone.
	f.l.mu.Lock()
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		time.Sleep(150 * time.Millisecond)
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	f.l.mu.Unlock()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	err = f.l.Subscribe(ctx2, &subscriber{}, "gamma2")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "connection refused")
	f.l.mu.Lock()
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		return nil, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	f.l.mu.Unlock()

	// A client that left stops waiting (its goroutine is not kept until the wait's end).
	gone := &subscriber{}
	gone.gone.Store(true)
	start = time.Now()
	err = f.l.Subscribe(context.Background(), gone, "delta")
	require.ErrorContains(t, err, "connection refused")
	require.Less(t, time.Since(start), subscribeRetry, "not retried")
}

// TestSubscribeAcrossALoss: a LISTEN whose listener connection breaks before its answer
// (PostgreSQL restarting: "listener connection lost: EOF") is sent again on the next
// connection, and the client's LISTEN succeeds.
func TestSubscribeAcrossALoss(t *testing.T) {
	f := startFakeListener(t)
	g, dial := nextConn(f)
	var made atomic.Int32
	f.l.mu.Lock()
	f.l.acquire = func(context.Context) (*pool.Conn, error) {
		if made.Add(1) > 1 {
			return nil, errors.New("only one more connection in this test")
		}
		c := dial()
		return c, nil
	}
	f.l.mu.Unlock()
	a := &subscriber{}
	joined := make(chan error, 1)
	go func() { joined <- f.l.Subscribe(context.Background(), a, "alpha") }()
	require.Eventually(t, func() bool { return len(f.queries()) == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, f.srv.Close()) // the server goes before answering
	require.Eventually(t, func() bool { return made.Load() == 1 || len(joined) > 0 }, 10*time.Second, time.Millisecond)
	require.Len(t, joined, 0, "the LISTEN failed with its connection")
	g.closeAtEnd(t)
	require.Eventually(t, func() bool { return len(g.queries()) >= 1 }, 10*time.Second, time.Millisecond)
	for i := 0; i < 4 && len(joined) == 0; i++ { // answer what the new connection sent
		require.Eventually(t, func() bool { return len(g.queries()) > i || len(joined) > 0 }, 10*time.Second, time.Millisecond)
		if len(joined) == 0 {
			g.ready(t)
		}
	}
	require.Eventually(t, func() bool { return len(joined) > 0 }, 10*time.Second, time.Millisecond)
	require.NoError(t, <-joined)
	require.Equal(t, int32(1), a.channels.Load())
	for _, q := range g.queries() {
		require.Equal(t, `LISTEN "alpha"`, q)
	}
}

// TestFullSubscriberStopsReading: while a subscriber handed a notification has no room
// (Backlog), the reader reads nothing more, for it or anyone; it reads on once the
// subscriber has room, or has left.
func TestFullSubscriberStopsReading(t *testing.T) {
	f := startFakeListener(t)
	full, other := &subscriber{}, &subscriber{}
	f.l.subs["ch"] = map[Subscriber]struct{}{full: {}, other: {}}
	room := make(chan struct{})
	full.full.Store(&room)

	played := make(chan struct{})
	go func() {
		defer close(played)
		for _, p := range []string{"one", "two", "three"} {
			f.notification(t, "ch", p)
		}
	}()
	require.Eventually(t, func() bool { return len(other.payloads()) == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(3 * roomCheck)
	require.Equal(t, []string{"one"}, other.payloads(), "read on while a subscriber is full")
	require.Equal(t, []string{"one"}, full.payloads())

	full.full.Store(nil)
	close(room)
	require.Eventually(t, func() bool { return len(full.payloads()) == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"one", "two", "three"}, other.payloads())
	<-played

	// Full again, and it leaves: the others get what follows.
	again := make(chan struct{})
	full.full.Store(&again)
	go func() {
		f.notification(t, "ch", "four")
		f.notification(t, "ch", "five")
	}()
	require.Eventually(t, func() bool { return len(other.payloads()) == 4 }, 10*time.Second, time.Millisecond)
	full.gone.Store(true)
	require.Eventually(t, func() bool { return len(other.payloads()) == 5 }, 10*time.Second, time.Millisecond)
}
