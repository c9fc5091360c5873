package pool

// Detach takes a leased connection out of its pool's size accounting while one client
// keeps it for session state (it counts against a separate direct budget kept by the
// caller). The pool may open a replacement at once. The connection stays the pool's for
// statistics and shared caps.
func (p *Pool) Detach(c *Conn) {
	p.mu.Lock()
	if _, ok := p.all[c]; !ok || c.detached {
		p.mu.Unlock()
		return
	}
	c.detached = true
	p.total--
	p.mu.Unlock()
	p.wakeWaiters()
}

// Reattach brings a detached connection back into the pool's accounting before it is
// released. When the pool filled up meanwhile (it opened a replacement), the pool is over
// its size until the connection is released, and release then closes it, as it does any
// connection over size. It reports false only when the pool is closed; the caller then
// closes the connection.
func (p *Pool) Reattach(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.detached {
		return true
	}
	if p.closed {
		return false
	}
	c.detached = false
	if _, ok := p.all[c]; ok {
		p.total++ // not for one its reader has removed meanwhile: it was never counted back
	}
	return true
}

// Detached reports whether c is detached.
func (c *Conn) Detached() bool {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return c.detached
}
