package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// requireCounters checks the queue's atomics against the ring's counts, which
// proxy/link's TestQueueCounts checks against its contents.
func requireCounters(t testing.TB, q *respQueue) {
	t.Helper()
	require.Equal(t, q.ring.Fakes(), q.fakes.Load(), "fakes publishes the fake requests queued")
	require.Equal(t, q.ring.Clears(), q.clears.Load(), "clears publishes the clearing requests queued")
}

// TestRespQueuePublishes: the counts respQueue publishes to goroutines without s.mu
// follow its contents through every way in and out the relay takes, the ring's own
// (Book.SentClient, Answer, RetireReady, Book.ErrorSkips: the caller publishes) as well
// as the wrapper's; a clearing request's retirement wakes its waiter. (The queue's rules
// themselves: proxy/link's match_test.go.)
func TestRespQueuePublishes(t *testing.T) {
	var b book
	q := &respQueue{}
	wake := q.wakeChan()
	q.push(&expect{Kind: 'P', Fake: true})
	requireCounters(t, q)
	b.SentClient(&q.ring, 'Q', false)
	q.markClear(1)
	requireCounters(t, q)
	q.pushBeforeTail(expect{Kind: 'Q', Hide: true}, expect{Kind: 'P', Fake: true})
	requireCounters(t, q)
	for _, k := range "PBES" {
		b.SentClient(&q.ring, byte(k), true)
	}
	requireCounters(t, q)

	q.ring.Answer('1') // the first fake Parse, as Session.answer
	q.publish()
	requireCounters(t, q)
	q.pop() // the hidden Query
	requireCounters(t, q)
	q.ring.Answer('1') // the second fake Parse
	q.publish()
	requireCounters(t, q)
	require.Empty(t, wake, "no clearing request retired yet")
	e := q.ring.RetireReady(func(expect) {}) // the clearing Query, as Session.retireReady
	q.publish()
	require.Equal(t, uint32(1), e.Clear)
	requireCounters(t, q)
	require.Len(t, wake, 1, "the clearing Query's retirement wakes its waiter")

	q.ring.Answer('1')
	b.ErrorSkips(&q.ring, func(expect, bool) {}) // as Session.skipToSync
	q.publish()
	requireCounters(t, q)
	require.Equal(t, 1, q.len(), "the Sync stays for its ReadyForQuery")

	q.push(&expect{Kind: 'E', Clear: 2})
	requireCounters(t, q)
	q.reset()
	requireCounters(t, q)
	require.Zero(t, q.len())
}
