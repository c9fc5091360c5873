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

// markedStale reports whether RECONNECT has marked c (it was created before the mark).
func (p *Pool) markedStale(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.Created.Before(p.staleBefore)
}

// CloseNeeded reports whether c is to be closed when it is next released instead of
// being reused (SHOW SERVERS' close_needed): RECONNECT, or a reload that moved its
// database, marked it (it is older than the pool's mark), or its host went down or no
// longer has the role its database asks for. An idle connection so marked is closed at
// once, so it is the leased ones that show it.
func (c *Conn) CloseNeeded() bool {
	p := c.pool
	if p == nil {
		return false
	}
	return p.markedStale(c) || c.unfit()
}

// CloseAll closes every connection now, leased or not; their lessees see the read error.
func (p *Pool) CloseAll() {
	for _, c := range p.Conns() {
		c.closeFor(errKilled)
	}
}
