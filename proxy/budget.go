package proxy

import (
	"context"
	"sync"
)

// budget is a counting semaphore with FIFO waiters: the direct (pinned) connections a
// database may hold, direct_pool_size. Shared by every session of the database (and
// RELOAD's setMax); mu guards all its fields.
type budget struct {
	mu      sync.Mutex
	max, n  int
	waiters []budgetWaiter
}

// budgetWaiter is one acquire queued for a slot: ch gets nil when a slot is handed to
// it, or why its wait was ended for it (withdraw); who is the session it waits for.
// Owned by the budget (b.mu guards it in b.waiters); the waiting session's goroutine
// only receives on ch, and whoever takes it off the queue under b.mu sends once.
type budgetWaiter struct {
	ch  chan error
	who *Session
}

func newBudget(max int) *budget { return &budget{max: max} }

// tryAcquire takes a slot if one is free and nobody queues for it.
func (b *budget) tryAcquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n < b.max && len(b.waiters) == 0 {
		b.n++
		return true
	}
	return false
}

// acquire takes a slot for who, waiting in order until ctx is done or the wait is
// withdrawn (withdraw's error).
func (b *budget) acquire(ctx context.Context, who *Session) error {
	b.mu.Lock()
	if b.n < b.max && len(b.waiters) == 0 {
		b.n++
		b.mu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	b.waiters = append(b.waiters, budgetWaiter{ch, who})
	b.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		if b.take(func(w budgetWaiter) bool { return w.ch == ch }) {
			return context.Cause(ctx)
		}
		if err := <-ch; err != nil {
			return err // withdrawn just now
		}
		b.release() // granted just now: give it back
		return context.Cause(ctx)
	}
}

// withdraw ends who's wait for a slot, when it waits (its acquire returns err), and
// reports whether it did.
func (b *budget) withdraw(who *Session, err error) bool {
	var ch chan error
	if !b.take(func(w budgetWaiter) bool { ch = w.ch; return w.who == who }) {
		return false
	}
	ch <- err // the last waiter take looked at, the one it removed
	return true
}

// take removes the first waiter that match reports, and reports whether there was one.
func (b *budget) take(match func(budgetWaiter) bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.waiters {
		if match(w) {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// release frees a slot, handing it to the oldest waiter.
func (b *budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 && b.n <= b.max {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		w.ch <- nil
		return
	}
	b.n--
}

// setMax changes the size (reload) and wakes waiters that now fit.
func (b *budget) setMax(max int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.max = max
	for len(b.waiters) > 0 && b.n < b.max {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.n++
		w.ch <- nil
	}
}

// used reports the slots in use and the clients waiting.
func (b *budget) used() (n, waiting, max int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, len(b.waiters), b.max
}
