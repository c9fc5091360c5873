package pool

import (
	"context"
	"errors"
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
		case p.opts.IdleTimeout > 0 && c.idleFor(now) > p.opts.IdleTimeout && total > p.opts.MinSize:
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
	c, _, err := p.dialLocked(ctx, time.Time{}, nil) // refused by a shared limit: the next pass tries again
	if err != nil {
		p.opts.Logger.Warn("could not open min_pool_size connection", zap.Error(err))
		return
	}
	if c != nil {
		p.putIdle(c)
	}
}

// Pause holds new leases until Resume, as Hold does, and closes the pool's server
// connections: the idle ones now, each leased one when it is released (in transaction
// mode, at the end of its transaction), and any that comes back meanwhile (a dial, a
// reset). It does not wait: WaitPaused does. This is the admin console's PAUSE, which
// PgBouncer documents as disconnecting from every server once its queries are done,
// before a database restart.
func (p *Pool) Pause() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.holdLocked()
	p.draining = true
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		p.retireLocked(c)
	}
	// Queued clients leave the queue and wait for Resume instead (acquireFrom): no
	// connection is handed to them now, and none would be left to wake them.
	waiters := p.waiters.takeAll()
	p.mu.Unlock()
	for _, c := range idle {
		c.closeFor(errPaused)
	}
	for _, w := range waiters {
		w.give(nil)
	}
}

// Hold holds new leases until Resume, as Pause does, but keeps the pool's connections
// open (SUSPEND, KILL); on a pool that Pause holds, it ends the closing. It does not wait.
func (p *Pool) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.holdLocked()
	p.draining = false
}

// holdLocked marks the pool held; p.mu is held.
func (p *Pool) holdLocked() {
	if !p.paused {
		p.paused = true
		p.resume = make(chan struct{})
	}
}

// ErrNotPaused is WaitPaused's answer when Resume came before the hold took full effect.
var ErrNotPaused = errors.New("the pool was resumed")

// WaitPaused waits until the hold set by Pause or Hold has taken full effect: no
// connection leased or running a check or reset and, after Pause, no connection open or
// being dialed. A closed pool has nothing left to wait for. It returns ErrNotPaused when
// the pool is resumed first, and ctx's error when ctx ends first; the hold stays then.
func (p *Pool) WaitPaused(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		p.mu.Lock()
		done, err := p.quietLocked()
		p.mu.Unlock()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// quietLocked reports whether the pool's hold has taken full effect (WaitPaused); p.mu
// is held.
func (p *Pool) quietLocked() (bool, error) {
	if p.closed {
		return true, nil
	}
	if !p.paused {
		return false, ErrNotPaused
	}
	if p.draining {
		return len(p.all) == 0 && p.dialing == 0, nil
	}
	for c := range p.all {
		if c.dedicated {
			// Never released (a replication stream): under Hold (SUSPEND) its relay
			// stops by itself at a message boundary, as PgBouncer suspends its sockets.
			continue
		}
		if s := c.State(); s == StateActive || s == StateTested {
			return false, nil
		}
	}
	return true, nil
}

// Resume ends the hold of Pause or Hold: held Acquire calls proceed, and the pool dials
// again as they need (and min_pool_size asks).
func (p *Pool) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		p.draining = false
		close(p.resume)
	}
}

// CloseIdle closes every idle connection (RECONNECT); leased ones close on release when
// reconnect is set.
func (p *Pool) CloseIdle() { p.closeIdle(errReconnect) }

// CloseIdleFor closes every idle connection, and for d more each connection that was
// out at this moment (leased, in server_reset_query or a health check) as it comes back
// instead of keeping it idle; one handed to a queued lessee stays, as does one leased
// after now, or kept by its client. A statement that needs the database to itself
// (DROP DATABASE) is about to run, and PostgreSQL waits up to d for that database's
// other sessions to end: a connection whose client has only just left, still leased
// or in its reset, is one.
func (p *Pool) CloseIdleFor(d time.Duration) {
	now := time.Now()
	p.mu.Lock()
	p.exclusiveAt, p.exclusiveUntil = now, now.Add(d)
	p.mu.Unlock()
	p.closeIdle(errExclusive)
}

// closeIdle closes every idle connection for reason.
func (p *Pool) closeIdle(reason error) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		p.retireLocked(c)
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeFor(reason)
	}
}
