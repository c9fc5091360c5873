package pool

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// maintain closes expired idle connections and keeps min_pool_size warm.
func (p *Pool) maintain() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.trimIdle()
			p.fillMin()
		}
	}
}

// trimIdle closes idle connections past server_lifetime or server_idle_timeout, and those
// over the pool's size after a shrink, keeping min_pool_size.
func (p *Pool) trimIdle() {
	now := time.Now()
	type victim struct {
		c      *Conn
		reason error
	}
	var victims []victim
	p.mu.Lock()
	keep := p.idle[:0]
	total := p.total - p.retiring
	for _, c := range p.idle {
		var reason error
		switch {
		case c.closing.Load():
			reason = errPoolClosed // already closing: the first reason stays
		case p.opts.Lifetime > 0 && now.Sub(c.Created) > p.opts.Lifetime:
			reason = errLifetime
		case p.opts.IdleTimeout > 0 && now.Sub(c.LastUsed()) > p.opts.IdleTimeout && total > p.opts.MinSize:
			reason = errIdle
		case total > p.opts.Size+p.opts.ReserveSize:
			reason = errOverSize
		}
		if reason != nil {
			victims = append(victims, victim{c, reason})
			total--
			if !c.closing.Load() {
				p.retireLocked(c)
			}
			continue
		}
		keep = append(keep, c)
	}
	for i := len(keep); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = keep
	p.mu.Unlock()
	for _, v := range victims {
		v.c.closeFor(v.reason)
	}
}

func (p *Pool) fillMin() {
	p.mu.Lock()
	if p.closed || p.paused || p.total >= p.opts.MinSize || p.total >= p.opts.Size {
		p.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err, _ := p.dialLocked(ctx, time.Time{}, false) // refused by a shared limit: the next pass tries again
	if err != nil {
		p.opts.Logger.Warn("could not open min_pool_size connection", zap.Error(err))
		return
	}
	if c != nil {
		p.putIdle(c)
	}
}

// Pause waits until no connection is leased, then holds new Acquire calls until Resume.
func (p *Pool) Pause(ctx context.Context) error {
	p.mu.Lock()
	if !p.paused {
		p.paused = true
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if p.Stats().Active == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Resume lets held Acquire calls proceed.
func (p *Pool) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
	}
}

// CloseIdle closes every idle connection (RECONNECT); leased ones close on release when
// reconnect is set.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		p.retireLocked(c)
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeFor(errReconnect)
	}
}
