package proxy

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
)

// The client's direction of the relay: the per-message work dispatch does for a client
// message on a linked server (relay.go: stickyNeed, account under s.mu, forwardLocked),
// with the server's answers retired through the response queue's decisions
// (proxy/link/match.go) so the queue stays as it is in steady state. TestRelayAllocatesNothing
// (relay_bench_test.go) covers the server's direction.

// clientBatch is an extended-protocol request (an unnamed statement's Parse, Bind,
// Execute, Sync) and a simple Query, as a driver sends them.
func clientBatch() []byte {
	b := authQueryMessages("SELECT abalance FROM pgbench_accounts WHERE aid = $1", "42")
	return wire.Query(b, "SELECT abalance FROM pgbench_accounts WHERE aid = 42")
}

// forwardOne does dispatch's work for the next client message on the linked server c.
func forwardOne(s *Session, c *pool.Conn) (byte, error) {
	typ, n, err := s.rd.Next()
	if err != nil {
		return 0, err
	}
	pin, release, err := s.stickyNeed(typ, n)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.account(typ)
	s.mu.Unlock()
	return typ, s.forwardLocked(c, typ, n, pin, release, nil)
}

// answerBatch retires what the server's answers to clientBatch retire.
func answerBatch(s *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, typ := range []byte("12DCZTDCZ") {
		if typ == 'Z' {
			s.q.ring.RetireReady(func(expect) {})
			s.q.publish()
			s.Pending--
			continue
		}
		s.q.ring.Answer(typ)
	}
}

func TestForwardClientAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit time.Duration // query_timeout
	}{
		{"no query_timeout", 0},
		{"query_timeout", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Session{rd: wire.NewReader(&relayLoopReader{data: clientBatch()}), wr: wire.NewWriter(io.Discard),
				sessionWork: newWork(), mode: config.PoolModeTransaction, prep: prepPass}
			s.limits.query = tc.limit
			t.Cleanup(s.disarmAll)
			c := &pool.Conn{Wr: wire.NewWriter(io.Discard)}
			batch := func() {
				for _, want := range []byte("PBESQ") {
					typ, err := forwardOne(s, c)
					if err != nil || typ != want {
						t.Fatalf("forwarded %q (%v), want %q", typ, err, want)
					}
				}
				answerBatch(s)
			}
			batch() // warm the buffers and the queue
			require.Zero(t, s.q.len())
			allocs := testing.AllocsPerRun(1000, batch)
			require.Zero(t, s.q.len())
			require.Zero(t, allocs, "allocations per batch (5 messages, 2 requests)")
		})
	}
}

// TestTimerFiresOncePerArming: a firing acts only for the current arming, once; a late
// callback of an earlier arming (its timer had fired when it was re-armed) or of a
// disarmed one does nothing.
func TestTimerFiresOncePerArming(t *testing.T) {
	s := &Session{sessionWork: newWork()}
	s.arm(timerQuery, time.Hour)
	t.Cleanup(s.disarmAll)
	tm := s.timers
	armedAt := tm.due[timerQuery].Add(-time.Hour)
	_, ok := tm.fired(timerQuery, armedAt.Add(time.Minute))
	require.False(t, ok, "a callback before the arming is due (a late one of an earlier arming)")
	gen, ok := tm.fired(timerQuery, armedAt.Add(time.Hour))
	require.True(t, ok)
	require.Equal(t, tm.gen[timerQuery], gen)
	_, ok = tm.fired(timerQuery, armedAt.Add(2*time.Hour))
	require.False(t, ok, "the same arming acts once")

	s.arm(timerQuery, time.Hour)
	require.Greater(t, tm.gen[timerQuery], gen, "re-arming moves the generation on (queryTimedOut checks it)")
	s.disarm(timerQuery)
	_, ok = tm.fired(timerQuery, time.Now().Add(2*time.Hour))
	require.False(t, ok, "a disarmed timer's late callback")
	require.Same(t, tm.t[timerQuery], s.timers.t[timerQuery])
	t0 := tm.t[timerQuery]
	s.arm(timerQuery, time.Hour)
	require.Same(t, t0, tm.t[timerQuery], "the timer is re-armed, not made anew")
}
