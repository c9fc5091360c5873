package procs

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStep(t *testing.T) {
	st := func(p, max, high, low int) State { return State{Procs: p, Max: max, High: high, Low: low} }
	cases := []struct {
		name  string
		in    State
		usage float64
		want  State
	}{
		{"one P well used: count", st(1, 2, 0, 0), 0.65, st(1, 2, 1, 0)},
		{"one P well used twice: add one", st(1, 2, raiseAfter-1, 0), 0.65, st(2, 2, 0, 0)},
		{"one P busy: add one on the second sample", st(1, 2, 1, 0), 1.0, st(2, 2, 0, 0)},
		{"one P half used: keep, the count restarts", st(1, 2, 1, 0), 0.45, st(1, 2, 0, 0)},
		{"at the most: keep", st(2, 2, 0, 0), 2.0, st(2, 2, 0, 0)},
		{"two of four well used: add one", st(2, 4, 1, 3), 1.3, st(3, 4, 0, 0)},
		{"one of four idle: keep", st(1, 4, 0, 0), 0.1, st(1, 4, 0, 0)},
		{"fits in one fewer: count", st(2, 2, 0, 0), 0.4, st(2, 2, 0, 1)},
		{"fits in one fewer long enough: give one back", st(2, 2, 0, lowerAfter-1), 0.4, st(1, 2, 0, 0)},
		{"between the thresholds: both counts restart", st(2, 2, 0, 7), 0.9, st(2, 2, 0, 0)},
		{"three Ps, load for two at most half busy: count", st(3, 4, 0, 2), 0.95, st(3, 4, 0, 3)},
		{"three Ps, load above: no count", st(3, 4, 0, 2), 1.1, st(3, 4, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, Step(c.in, c.usage))
		})
	}
}

// TestStepHysteresis: the measured loads keep their count (pgbench -S at 0.35-0.46 of a
// core stays on one P; TLS logins at 0.63-0.78 on one P get a second and, at 0.9 on two,
// keep it); a lone busy sample adds nothing; a load that leaves gives the P back after
// lowerAfter samples.
func TestStepHysteresis(t *testing.T) {
	run := func(s State, usage func(i int, procs int) float64, n int) (State, int) {
		changes := 0
		for i := range n {
			next := Step(s, usage(i, s.Procs))
			if next.Procs != s.Procs {
				changes++
			}
			s = next
		}
		return s, changes
	}
	one := State{Procs: 1, Max: 2}
	s, changes := run(one, func(i, _ int) float64 { return []float64{0.35, 0.46, 0.41, 0.38}[i%4] }, 200)
	require.Equal(t, 0, changes, "pgbench -S stays on one P")
	require.Equal(t, 1, s.Procs)

	s, changes = run(one, func(i, p int) float64 {
		if p == 1 {
			return []float64{0.63, 0.78, 0.70}[i%3]
		}
		return 0.9
	}, 200)
	require.Equal(t, 1, changes, "TLS logins: one raise, then steady")
	require.Equal(t, 2, s.Procs)

	s, changes = run(one, func(i, _ int) float64 {
		if i%10 == 0 {
			return 1.0 // a lone busy sample every 2.5 s
		}
		return 0.3
	}, 200)
	require.Equal(t, 0, changes)
	require.Equal(t, 1, s.Procs)

	s = State{Procs: 2, Max: 2}
	s, _ = run(s, func(int, int) float64 { return 0.2 }, lowerAfter-1)
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
