package pool

import "sync"

// Limit caps connections across several pools (max_db_connections, max_user_connections).
// Shared by those pools' goroutines; mu guards all its fields.
type Limit struct {
	mu    sync.Mutex
	max   int // 0 = unlimited
	n     int
	gen   uint64 // slots given back so far (put)
	pools map[*Pool]struct{}
}

// NewLimit returns a cap of max connections; 0 means unlimited.
func NewLimit(max int) *Limit { return &Limit{max: max, pools: make(map[*Pool]struct{})} }

// SetMax changes the cap (reload).
func (l *Limit) SetMax(max int) {
	l.mu.Lock()
	l.max = max
	l.gen++ // a raised cap frees slots too
	l.mu.Unlock()
	l.kick()
}

// Count reports the connections counted against the cap.
func (l *Limit) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *Limit) register(p *Pool) {
	l.mu.Lock()
	l.pools[p] = struct{}{}
	l.mu.Unlock()
}

func (l *Limit) unregister(p *Pool) {
	l.mu.Lock()
	delete(l.pools, p)
	l.mu.Unlock()
}

func (l *Limit) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.n >= l.max {
		return false
	}
	l.n++
	return true
}

func (l *Limit) put() {
	l.mu.Lock()
	l.n--
	l.gen++
	l.mu.Unlock()
	l.kick()
}

// freed reports how many slots have been given back so far: a pool refused a slot reads it
// before asking and again as it queues, so a slot given back in between, whose kick found
// no waiter, is not missed.
func (l *Limit) freed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// kick wakes a waiter in each pool under this cap so it can try to dial.
func (l *Limit) kick() {
	l.mu.Lock()
	pools := make([]*Pool, 0, len(l.pools))
	for p := range l.pools {
		pools = append(pools, p)
	}
	l.mu.Unlock()
	for _, p := range pools {
		p.wakeWaiters()
	}
}

// starved returns a pool other than p under this cap, reached, whose clients queue for a
// connection that the pool itself has room to open; nil if there is none.
func (l *Limit) starved(p *Pool) *Pool {
	l.mu.Lock()
	if l.max <= 0 || l.n < l.max {
		l.mu.Unlock()
		return nil
	}
	pools := make([]*Pool, 0, len(l.pools))
	for q := range l.pools {
		if q != p {
			pools = append(pools, q)
		}
	}
	l.mu.Unlock()
	for _, q := range pools {
		q.mu.Lock()
		want := q.waiters.Len() > 0 && q.total < q.opts.Size && !q.closed && !q.paused && !q.backingOffLocked()
		q.mu.Unlock()
		if want {
			return q
		}
	}
	return nil
}

// evictIdle closes one idle connection in a pool other than p, making room under the cap.
func (l *Limit) evictIdle(p *Pool) {
	l.mu.Lock()
	pools := make([]*Pool, 0, len(l.pools))
	for q := range l.pools {
		if q != p {
			pools = append(pools, q)
		}
	}
	l.mu.Unlock()
	for _, q := range pools {
		q.mu.Lock()
		c := q.popIdle()
		if c != nil {
			q.retireLocked(c)
		}
		q.mu.Unlock()
		if c != nil {
			c.closeFor(errEvicted)
			return
		}
	}
}
