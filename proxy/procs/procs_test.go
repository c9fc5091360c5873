package procs

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStep(t *testing.T) {
	st := func(p, max, low int) State { return State{Procs: p, Max: max, Low: low} }
	cases := []struct {
		name  string
		in    State
		usage float64
		want  State
	}{
		{"one P busy: add one", st(1, 2, 0), 0.85, st(2, 2, 0)},
		{"one P well used: keep", st(1, 2, 0), 0.45, st(1, 2, 0)},
		{"at the most: keep", st(2, 2, 0), 2.0, st(2, 2, 0)},
		{"two of four busy: add one", st(2, 4, 3), 1.7, st(3, 4, 0)},
		{"one of four idle: keep", st(1, 4, 0), 0.1, st(1, 4, 0)},
		{"fits in one fewer: count", st(2, 2, 0), 0.4, st(2, 2, 1)},
		{"fits in one fewer long enough: give one back", st(2, 2, lowerAfter-1), 0.4, st(1, 2, 0)},
		{"between the thresholds: the count restarts", st(2, 2, 7), 0.9, st(2, 2, 0)},
		{"three Ps, load for two at most half busy: count", st(3, 4, 2), 0.95, st(3, 4, 3)},
		{"three Ps, load above: no count", st(3, 4, 2), 1.1, st(3, 4, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, Step(c.in, c.usage))
		})
	}
}

// TestStepHysteresis: a load on the boundary between one and two Ps does not make the
// count swing; a load that leaves makes it fall back after lowerAfter samples.
func TestStepHysteresis(t *testing.T) {
	s := State{Procs: 1, Max: 2}
	changes := 0
	for i := range 200 {
		u := 0.8 // a full P
		if s.Procs == 2 {
			u = 0.9 + 0.2*float64(i%2) // what that load costs on two Ps
		}
		next := Step(s, u)
		if next.Procs != s.Procs {
			changes++
		}
		s = next
	}
	require.Equal(t, 1, changes, "one raise, then steady")
	require.Equal(t, 2, s.Procs)
	for range lowerAfter - 1 {
		s = Step(s, 0.2)
	}
	require.Equal(t, 2, s.Procs, "a pause shorter than lowerAfter samples keeps the P")
	s = Step(s, 0.2)
	require.Equal(t, 1, s.Procs)
}

// TestGovernorRun drives Run with a fake CPU clock and records what it sets.
func TestGovernorRun(t *testing.T) {
	var mu sync.Mutex
	var cpu time.Duration
	var sets []int
	g := New(4, nil)
	g.cpu = func() (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		return cpu, true
	}
	g.set = func(n int) {
		mu.Lock()
		defer mu.Unlock()
		sets = append(sets, n)
	}
	// Each sample adds far more CPU than any interval's wall time: every sample is busy.
	tick := make(chan struct{})
	go func() {
		for range tick {
			mu.Lock()
			cpu += 10 * time.Second
			mu.Unlock()
		}
	}()
	defer close(tick)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		require.True(t, g.Run(stop, time.Millisecond))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for g.Procs() != 1 && time.Now().Before(deadline) { // Run has begun: one P
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, 1, g.Procs())
	for g.Procs() < 4 && time.Now().Before(deadline) {
		tick <- struct{}{}
		time.Sleep(2 * time.Millisecond)
	}
	require.Equal(t, 4, g.Procs())
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, 2, 3, 4}, sets[:4], "starts at one P and adds one at a time")
	require.Equal(t, 4, sets[len(sets)-1], "gives back every P when stopped")
	require.Equal(t, 4, g.Procs())
}

// TestGovernorNoCPU: where the CPU time cannot be read the governor changes nothing.
func TestGovernorNoCPU(t *testing.T) {
	g := New(4, nil)
	g.cpu = func() (time.Duration, bool) { return 0, false }
	g.set = func(int) { t.Fatal("set called") }
	require.False(t, g.Run(make(chan struct{}), time.Millisecond))
	require.Equal(t, 4, g.Procs())
}
