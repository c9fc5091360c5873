//go:build linux

package proxy

import (
	"iter"
	"sync/atomic"
)

// Login coroutines are kept for the next login. A login on a loop runs as a coroutine
// (iter.Pull: a goroutine the loop resumes and that yields back), and making one per
// login cost a goroutine's creation and exit, the coroutine's allocations, and the growth
// of its stack to a login's depth (growLoginStack: a copy of the stack and a walk of its
// frames), which a goroutine that ends hands back. A worker whose login ended yields
// loginDone instead of returning, and the loop keeps it (idle, up to maxIdleWorkers) for
// the next client that logs in, with its stack grown already. A loop with no login since
// its last sweep (a second) ends its idle workers: a pooler between waves of logins
// keeps no goroutine and no stack for them.
//
// Owners: a worker belongs to its loop's goroutine (parker.workers, loginHanded,
// stepLogin), and while it runs, to the coroutine the loop resumed, which runs only while
// the loop waits for it (as loopLogin).

// maxIdleWorkers bounds the login coroutines a loop keeps between logins: each holds a
// stack of a login's depth (8 KB), so a storm of logins leaves at most this many.
const maxIdleWorkers = 8

// loginWorkersMade counts the workers made in the process (LoginWorkersMade, tests).
var loginWorkersMade atomic.Uint64

// loginWorker is a login coroutine that runs one client's login after another.
type loginWorker struct {
	next func() (loginWait, bool)
	stop func()
	s    *Session // the login it runs now; nil while idle
}

// takeWorker returns an idle login coroutine of the loop's, or a new one.
func (p *parker) takeWorker() *loginWorker {
	p.workerUses++
	if n := len(p.workers); n > 0 {
		w := p.workers[n-1]
		p.workers[n-1] = nil
		p.workers = p.workers[:n-1]
		return w
	}
	loginWorkersMade.Add(1)
	w := &loginWorker{}
	w.next, w.stop = iter.Pull(func(yield func(loginWait) bool) {
		growLoginStack()
		for {
			s := w.s
			s.lgState().yield = yield // the login's waits yield through it (loginConn.wait)
			s.runLogin()
			w.s = nil
			if !yield(loginDone) {
				return // stopped while idle (the loop ended, or the pool was full)
			}
		}
	})
	return w
}

// putWorker keeps w, whose login ended, for the next login (or stops it when the loop
// keeps enough).
func (p *parker) putWorker(w *loginWorker) {
	if len(p.workers) >= maxIdleWorkers {
		w.stop()
		return
	}
	p.workers = append(p.workers, w)
}

// retireWorkers ends the idle login coroutines when no login took one since the last
// sweep (which calls it).
func (p *parker) retireWorkers() {
	if p.workerUses == 0 {
		p.stopWorkers()
	}
	p.workerUses = 0
}

// stopWorkers ends the idle login coroutines (the loop has ended, or retireWorkers).
func (p *parker) stopWorkers() {
	for i, w := range p.workers {
		w.stop()
		p.workers[i] = nil
	}
	p.workers = p.workers[:0]
}
