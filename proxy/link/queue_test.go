package link

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// requireCounts checks the queue's counts of Fake and clearing requests against its
// contents.
func requireCounts(t testing.TB, q *Queue[stmt, fix, drop]) {
	t.Helper()
	var fakes, clears int32
	q.Each(func(e expect) {
		if e.Fake {
			fakes++
		}
		if e.Clear != 0 {
			clears++
		}
	})
	require.Equal(t, fakes, q.Fakes(), "Fakes counts the fake requests queued")
	require.Equal(t, clears, q.Clears(), "Clears counts the clearing requests queued")
}

// TestQueueCounts: the counts follow the contents through every way in and out, also
// when a clearing request is queued again behind others (PushBeforeTail) or anew (a
// retry pushes the requests an error skipped).
func TestQueueCounts(t *testing.T) {
	var q Queue[stmt, fix, drop]
	q.Push(&expect{Kind: 'P', Fake: true})
	q.Push(&expect{Kind: 'Q'})
	require.True(t, q.MarkClear(1))
	require.False(t, q.MarkClear(2), "marked already")
	requireCounts(t, &q)
	q.PushBeforeTail(expect{Kind: 'Q', Hide: true}, expect{Kind: 'P', Fake: true})
	requireCounts(t, &q)
	require.Equal(t, uint32(1), q.Tail().Clear, "the clearing Query stays the newest")
	q.Push(&expect{Kind: 'E', Clear: 3})
	requireCounts(t, &q)
	for range 9 { // past the first growth of the ring
		q.Push(&expect{Kind: 'S'})
	}
	requireCounts(t, &q)
	q.Pop()
	requireCounts(t, &q)
	q.RetireReady(func(expect) {})
	requireCounts(t, &q)
	q.Reset()
	requireCounts(t, &q)
	require.Zero(t, q.Len())
	require.Zero(t, q.Fakes())
	require.Zero(t, q.Clears())
}
