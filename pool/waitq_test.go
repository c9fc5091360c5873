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

// TestNextWaiterPrefersTheConnectionsLoop: a connection a loop reads goes to a waiter of
// that loop among the first homeSlack, passing the first waiter at most homeSkips times;
// one no loop reads goes to the first waiter.
func TestNextWaiterPrefersTheConnectionsLoop(t *testing.T) {
	a, b := &LoopHome{}, &LoopHome{}
	inLoop := func(h *LoopHome) *Conn {
		c := &Conn{}
		c.lr.loop.Store(h)
		c.lr.on.Store(true)
		return c
	}
	p := &Pool{}
	wb1, wa1, wa2, wa3, wb2 := &waiter{home: b}, &waiter{home: a}, &waiter{home: a}, &waiter{home: a}, &waiter{home: b}
	for _, w := range []*waiter{wb1, wa1, wa2, wa3, wb2} {
		p.waiters.push(w)
	}
	onA := inLoop(a)
	require.Same(t, wa1, p.nextWaiter(onA), "a waiter of the connection's loop, behind the first")
	require.Same(t, wa2, p.nextWaiter(onA))
	require.Same(t, wb1, p.nextWaiter(onA), "the first waiter is passed over twice at most")
	require.Same(t, wa3, p.nextWaiter(&Conn{}), "no loop reads it: the first waiter")
	require.Same(t, wb2, p.nextWaiter(onA), "none of its loop: the first waiter")
	require.Zero(t, p.waiters.Len())

	// Idle connections: the loop's own among the most recently used, else the last.
	onB, onA2 := inLoop(b), inLoop(a)
	p.idle = []*Conn{onA2, onB, onA}
	require.Same(t, onB, p.popIdleFor(b))
	require.Same(t, onA, p.popIdleFor(nil))
	require.Same(t, onA2, p.popIdleFor(b), "none of its loop: the most recently used")
}
