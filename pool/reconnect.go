package pool

import "time"

// Reconnect marks every current connection for closing: idle ones close now, leased ones
// when they are released (the admin console's RECONNECT).
func (p *Pool) Reconnect() {
	p.mu.Lock()
	p.staleBefore = time.Now()
	p.mu.Unlock()
	p.CloseIdle()
}

// Stale counts the open connections that Reconnect marked and that have not closed yet
// (WAIT_CLOSE).
func (p *Pool) Stale() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.all {
		if c.Created.Before(p.staleBefore) {
			n++
		}
	}
	return n
}

// CloseAll closes every connection now, leased or not; their lessees see the read error.
func (p *Pool) CloseAll() {
	for _, c := range p.Conns() {
		c.closeFor(errKilled)
	}
}
