package pool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWaitQueueOrder drives the ring against a plain slice model through growth,
// wrap-around, pushes at both ends, removals and filtering.
func TestWaitQueueOrder(t *testing.T) {
	var q waitQueue
	var model []*waiter
	ws := make([]*waiter, 300)
	for i := range ws {
		ws[i] = &waiter{}
	}
	check := func() {
		t.Helper()
		require.Equal(t, len(model), q.Len())
		for i, w := range model {
			require.Same(t, w, q.at(i), "waiter %d", i)
		}
		if len(model) > 0 {
			require.Same(t, model[0], q.front())
		}
	}
	next := 0
	for step := range 2000 {
		switch op := step % 7; {
		case op < 3:
			w := ws[next%len(ws)]
			next++
			q.push(w)
			model = append(model, w)
		case op == 3 && len(model) > 0:
			require.Same(t, model[0], q.pop())
			model = model[1:]
		case op == 4:
			w := ws[next%len(ws)]
			next++
			q.pushFront(w)
			model = append([]*waiter{w}, model...)
		case op == 5 && len(model) > 2:
			target := model[len(model)/2]
			require.Same(t, target, q.removeFirst(func(w *waiter) bool { return w == target }))
			for i, w := range model {
				if w == target {
					model = append(model[:i:i], model[i+1:]...)
					break
				}
			}
		case op == 6 && step%5 == 0:
			drop := model[len(model)/3]
			q.filter(func(w *waiter) bool { return w != drop })
			kept := model[:0:0]
			for _, w := range model {
				if w != drop {
					kept = append(kept, w)
				}
			}
			model = kept
		}
		check()
	}
	require.Nil(t, q.removeFirst(func(*waiter) bool { return false }))
	require.Equal(t, model, q.takeAll())
	require.Zero(t, q.Len())
}

// TestWaitQueueSteadyStateAllocatesNothing: queueing and serving waiters at a steady
// depth allocates nothing once the ring has grown.
func TestWaitQueueSteadyStateAllocatesNothing(t *testing.T) {
	var q waitQueue
	w := &waiter{}
	for range 100 {
		q.push(w)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		q.push(w)
		q.pop()
	})
	require.Zero(t, allocs)
}
