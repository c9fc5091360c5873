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

// TestQueueWrapsInOrder: the ring keeps its order across wraps and growths, with its own
// buffer and with one lent by Swap, also a lent buffer whose length is no power of two
// (at wraps with a mask: such a buffer is not taken).
func TestQueueWrapsInOrder(t *testing.T) {
	for _, spare := range [][]expect{nil, make([]expect, 8), make([]expect, 16), make([]expect, 6), make([]expect, 1)} {
		var q Queue[stmt, fix, drop]
		q.Swap(spare)
		next, want := int32(0), int32(0)
		for round := range 40 {
			for range round%7 + 1 {
				q.Push(&expect{Seq: uint32(next)})
				next++
			}
			for range round%5 + 1 {
				e, ok := q.Pop()
				if !ok {
					break
				}
				require.Equal(t, uint32(want), e.Seq, "spare of %d: popped in the order pushed", len(spare))
				want++
			}
			require.Equal(t, int(next-want), q.Len())
			require.Zero(t, q.Cap()&(q.Cap()-1), "the ring's length is a power of two")
		}
	}
}
