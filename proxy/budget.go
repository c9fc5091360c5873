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
	waiters []chan struct{}
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

// acquire takes a slot, waiting in order until ctx is done.
func (b *budget) acquire(ctx context.Context) error {
	b.mu.Lock()
	if b.n < b.max && len(b.waiters) == 0 {
		b.n++
		b.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		for i, w := range b.waiters {
			if w == ch {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				b.mu.Unlock()
				return context.Cause(ctx)
			}
		}
		b.mu.Unlock()
		<-ch // granted just now: give it back
		b.release()
		return context.Cause(ctx)
	}
}

// release frees a slot, handing it to the oldest waiter.
func (b *budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 && b.n <= b.max {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		w <- struct{}{}
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
		w <- struct{}{}
	}
}

// used reports the slots in use and the clients waiting.
func (b *budget) used() (n, waiting, max int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, len(b.waiters), b.max
}
