// Package procs sizes the Go runtime's processors (GOMAXPROCS) to the CPU pgmux uses:
// as few as carry the load, up to the number the process was started with (the
// GOMAXPROCS environment variable, else the cores or the container's CPU limit, as Go
// reads them).
//
// Why: pgmux's client loops (package proxy) are one per P, and a P that has little to do
// still costs. With two Ps on a two-core machine that also runs PostgreSQL, the runtime
// turns every idle moment of a loop into a thread's sleep and wake-up; pgbench -S through
// pgmux at 50 and 500 clients spent 20-25 µs of CPU per transaction with two Ps and 15-22
// with one, and made fewer transactions per second with two (bench/README.md, sessions
// of 2026-12-04 and -05). One P is busy 40-45% of a core at those loads. So pgmux starts
// with one P and adds one when the process's CPU keeps the Ps it has well used (usage ≥
// raiseAt × Ps in raiseAfter samples in a row), and gives one back when the load would
// fit in one fewer with room to spare for a while (usage ≤ lowerAt × (Ps-1) for
// lowerAfter samples in a row).
// The loops are made once, one per P the process may use; new clients are placed on as
// many loops as there are Ps in use (proxy.Server.SetActiveLoops, through the onChange
// callback), and every client keeps the loop it was placed on.
//
// The rule is a pure function (Step); Governor applies it to the process's CPU time.
package procs

import (
	"runtime"
	"sync/atomic"
	"time"
)

// The rule's thresholds, as fractions of a core per P.
const (
	// raiseAt: raiseAfter samples in a row in which the process used this much CPU per P
	// it had add a P. Well below 1: a P's goroutines queue before it is full. With one
	// P, pgbench -C over TLS through pgmux (an RSA-4096 key: pgmux's handshakes are the
	// heavy side, on goroutines) used 0.63-0.78 of a core and made 96 connections a
	// second, where two Ps made 123; pgbench -S at 500 clients, which a second P does not
	// speed up on a two-core machine shared with PostgreSQL, used 0.34-0.46.
	raiseAt = 0.6
	// raiseAfter: samples in a row at raiseAt or more before a P is added (one sample is
	// a quarter-second: a burst that short is over before the P would help).
	raiseAfter = 2
	// lowerAt: one P fewer would carry the load at most this busy. Well below raiseAt
	// so that a load near a boundary does not add and remove a P in turn.
	lowerAt = 0.5
	// lowerAfter: how many samples in a row the load must fit in fewer Ps before one is
	// given back (5 s at the default interval): a pause in the load keeps its Ps.
	lowerAfter = 20
	// Interval is how often the process's CPU time is read (one getrusage(2) each).
	Interval = 250 * time.Millisecond
)

// State is the rule's memory between samples.
type State struct {
	Procs int // Ps in use now
	Max   int // at most this many
	High  int // samples in a row at raiseAt or more per P
	Low   int // samples in a row the load would fit in Procs-1
}

// Step applies one sample: usage is the process's CPU time over the sample divided by
// its wall time (1.0 = one core busy). It returns the state after the sample; Procs
// changes by at most one.
func Step(s State, usage float64) State {
	switch {
	case s.Procs < s.Max && usage >= raiseAt*float64(s.Procs):
		s.Low = 0
		s.High++
		if s.High >= raiseAfter {
			s.Procs++
			s.High = 0
		}
	case s.Procs > 1 && usage <= lowerAt*float64(s.Procs-1):
		s.High = 0
		s.Low++
		if s.Low >= lowerAfter {
			s.Procs--
			s.Low = 0
		}
	default:
		s.High, s.Low = 0, 0
	}
	return s
}

// Governor runs the rule against the process's CPU time and sets GOMAXPROCS.
type Governor struct {
	st       State
	procs    atomic.Int32
	onChange func(from, to int, usage float64)
	cpu      func() (time.Duration, bool) // the process's user+system CPU time so far
	set      func(int)                    // runtime.GOMAXPROCS in production
}

// New returns a governor between one P and max (max < 1: runtime.GOMAXPROCS(0), what the
// process was started with). onChange, if not nil, is called after every change.
func New(max int, onChange func(from, to int, usage float64)) *Governor {
	if max < 1 {
		max = runtime.GOMAXPROCS(0)
	}
	g := &Governor{st: State{Procs: max, Max: max}, onChange: onChange, cpu: processCPU,
		set: func(n int) { runtime.GOMAXPROCS(n) }}
	g.procs.Store(int32(max))
	return g
}

// Procs is the number of Ps the governor last set (the process's starting count until
// Run begins).
func (g *Governor) Procs() int { return int(g.procs.Load()) }

// Run sets one P (when the process may use more) and then samples every interval until
// done is closed, when it gives the process back its starting count. It reports false at
// once, changing nothing, where the process's CPU time cannot be read.
func (g *Governor) Run(done <-chan struct{}, interval time.Duration) bool {
	last, ok := g.cpu()
	if !ok || g.st.Max <= 1 {
		return false
	}
	g.apply(State{Procs: 1, Max: g.st.Max}, 0)
	t := time.NewTicker(interval)
	defer t.Stop()
	at := time.Now()
	for {
		select {
		case <-done:
			g.apply(State{Procs: g.st.Max, Max: g.st.Max}, 0)
			return true
		case now := <-t.C:
			cpu, ok := g.cpu()
			wall := now.Sub(at)
			if !ok || wall <= 0 {
				continue
			}
			usage := float64(cpu-last) / float64(wall)
			last, at = cpu, now
			g.apply(Step(g.st, usage), usage)
		}
	}
}

// apply makes next the state, setting GOMAXPROCS when its count changed.
func (g *Governor) apply(next State, usage float64) {
	from := g.st.Procs
	g.st = next
	if next.Procs == from {
		return
	}
	g.set(next.Procs)
	g.procs.Store(int32(next.Procs))
	if g.onChange != nil {
		g.onChange(from, next.Procs, usage)
	}
}
