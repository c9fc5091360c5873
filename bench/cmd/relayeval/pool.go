package main

import "sync"

// Pool is the bounded server pool shared by the loops of a driver (one loop for the
// goroutine driver). Each loop has its own idle servers and its own FIFO of waiting
// clients; one mutex covers all of them, taken once per lease and once per release.
//
// Servers stay on the loop that last used them, so a client's and its server's events
// are handled by one loop. With migrate, a server moves between loops only when the pool
// would otherwise be unfair or stall: a lease with no idle server on its own loop takes
// one idle on another loop, and a release on a loop that holds more than its share
// (size/loops) hands the server to another loop's waiter first. Without migrate (gnet:
// a connection cannot leave its loop) every loop is a pool of its own.
type Pool[S, W comparable] struct {
	mu      sync.Mutex
	loops   []loopPool[S, W]
	migrate bool
}

type loopPool[S, W comparable] struct {
	idle    []S
	waiters fifo[W]
	held    int // servers homed on this loop: idle and leased
	quota   int
}

// NewPool returns a pool for n loops whose servers, size in all, are shared out by Add.
func NewPool[S, W comparable](loops, size int, migrate bool) *Pool[S, W] {
	p := &Pool[S, W]{loops: make([]loopPool[S, W], loops), migrate: migrate}
	for i := range p.loops {
		p.loops[i].quota = size / loops
		if i < size%loops {
			p.loops[i].quota++
		}
	}
	return p
}

// Lease gives loop a server for waiter w: ok with the server and the loop it is homed on
// now (from != loop: the driver moves it), or not ok and w waits in loop's FIFO.
func (p *Pool[S, W]) Lease(loop int, w W) (s S, from int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lp := &p.loops[loop]
	if n := len(lp.idle); n > 0 && lp.waiters.len() == 0 {
		s = lp.idle[n-1]
		lp.idle = lp.idle[:n-1]
		return s, loop, true
	}
	if p.migrate && lp.waiters.len() == 0 {
		for j := range p.loops {
			o := &p.loops[j]
			if n := len(o.idle); j != loop && n > 0 {
				s = o.idle[n-1]
				o.idle = o.idle[:n-1]
				o.held--
				lp.held++
				return s, j, true
			}
		}
	}
	lp.waiters.push(w)
	return s, loop, false
}

// Release takes back server s from loop. ok: hand it to waiter w on loop to (to != loop:
// the driver moves it there).
func (p *Pool[S, W]) Release(loop int, s S) (w W, to int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.give(loop, s)
}

func (p *Pool[S, W]) give(loop int, s S) (w W, to int, ok bool) {
	lp := &p.loops[loop]
	other := -1
	if p.migrate {
		best := 0
		for j := range p.loops {
			if n := p.loops[j].waiters.len(); j != loop && n > best {
				best, other = n, j
			}
		}
	}
	if lp.waiters.len() > 0 && (other < 0 || lp.held <= lp.quota) {
		return lp.waiters.pop(), loop, true
	}
	if other >= 0 {
		lp.held--
		p.loops[other].held++
		return p.loops[other].waiters.pop(), other, true
	}
	lp.idle = append(lp.idle, s)
	return w, loop, false
}

// Add puts a new server on loop (as Release does).
func (p *Pool[S, W]) Add(loop int, s S) (w W, to int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loops[loop].held++
	return p.give(loop, s)
}

// Drop forgets a leased server of loop that was closed.
func (p *Pool[S, W]) Drop(loop int) {
	p.mu.Lock()
	p.loops[loop].held--
	p.mu.Unlock()
}

// DropIdle forgets s if it is idle on loop (it broke while idle); false if it is not
// there (leased meanwhile: its lessee finds it broken).
func (p *Pool[S, W]) DropIdle(loop int, s S) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	lp := &p.loops[loop]
	for i, x := range lp.idle {
		if x == s {
			lp.idle = append(lp.idle[:i], lp.idle[i+1:]...)
			lp.held--
			return true
		}
	}
	return false
}

// Cancel removes waiter w of loop (its client left); false if it is not waiting there.
func (p *Pool[S, W]) Cancel(loop int, w W) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loops[loop].waiters.remove(w)
}

// Held is the number of servers homed on each loop (tests).
func (p *Pool[S, W]) Held() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := make([]int, len(p.loops))
	for i := range p.loops {
		h[i] = p.loops[i].held
	}
	return h
}

// fifo is a queue on a slice that reuses its array.
type fifo[W comparable] struct {
	q    []W
	head int
}

func (f *fifo[W]) len() int { return len(f.q) - f.head }

func (f *fifo[W]) push(w W) {
	if f.head > 0 && (f.head == len(f.q) || f.head >= 64 && f.head*2 >= len(f.q)) {
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
	f.q = append(f.q, w)
}

func (f *fifo[W]) pop() W {
	var zero W
	w := f.q[f.head]
	f.q[f.head] = zero
	f.head++
	return w
}

func (f *fifo[W]) remove(w W) bool {
	for i := f.head; i < len(f.q); i++ {
		if f.q[i] == w {
			copy(f.q[i:], f.q[i+1:])
			var zero W
			f.q[len(f.q)-1] = zero
			f.q = f.q[:len(f.q)-1]
			return true
		}
	}
	return false
}
