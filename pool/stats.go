package pool

import "time"

// Stats is a snapshot of a pool for SHOW POOLS and metrics.
type Stats struct {
	Idle, Active, Tested, Login int
	Waiting                     int
	MaxWait                     time.Duration // the oldest waiter's wait so far
	Total                       int           // the pool's size in use: open and dialing, pinned ones left out
	Connected                   int           // open now, pinned (detached) ones included
	Connects, ConnectFailures   uint64
	ReserveUsed                 uint64
	WaitCount                   uint64
	WaitTotal                   time.Duration
	Paused                      bool
}

func (s *Stats) noteWait(d time.Duration) {
	s.WaitCount++
	s.WaitTotal += d
}

// Stats returns a snapshot.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Total = p.total
	s.Connected = len(p.all)
	s.Login = p.dialing
	s.Waiting = p.waiters.Len()
	s.Paused = p.paused
	if p.waiters.Len() > 0 {
		s.MaxWait = time.Since(p.waiters.front().since)
	}
	for c := range p.all {
		switch c.State() {
		case StateIdle:
			s.Idle++
		case StateActive:
			s.Active++
		case StateTested:
			s.Tested++
		}
	}
	return s
}

// Readers is how many of p's connections have a reader goroutine now; a connection an
// event loop reads has none (LoopPark).
func (p *Pool) Readers() int { return int(p.readers.Load()) }

// Conns returns the pool's open connections, for SHOW SERVERS.
func (p *Pool) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Conn, 0, len(p.all))
	for c := range p.all {
		out = append(out, c)
	}
	return out
}
