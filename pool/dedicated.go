package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ErrDedicated is why a dedicated connection is closed instead of being taken back: it
// serves its one client and is never reused.
var ErrDedicated = errors.New("dedicated connection: closed with its client, never reused")

// Dedicated opens a new connection for one caller alone, never taken from the idle list
// nor given back to it: a replication client's (PgBouncer pairs such a client with a
// server of its own). adjust changes a copy of the pool's target first (the caller's
// startup parameters). The connection counts like any other in the pool's size and in
// the shared limits (max_db_connections, max_user_connections); when they are reached,
// an idle connection is closed to make room, and without one the caller waits in the
// pool's queue, as a client does, until ctx is done.
//
// The connection comes back unleased, its reader running: the caller leases it with
// LeaseDedicated once it can take the server's messages, and ends it with Discard. A
// failed login leaves the pool as it was: a server refusing this connection (a role
// without REPLICATION) holds back no other client, as a failed dial of the pool would
// (server_login_retry).
func (p *Pool) Dedicated(ctx context.Context, adjust func(*Target)) (*Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if p.total-p.retiring >= p.opts.Size {
			if c := p.popIdle(); c != nil {
				p.retireLocked(c)
				p.mu.Unlock()
				c.closeFor(errEvictedDedicated)
				continue
			}
			if err := p.queueDedicated(ctx); err != nil {
				return nil, err
			}
			continue
		}
		p.total++
		p.dialing++
		p.mu.Unlock()
		gens := p.limitGens()
		if refused := p.takeLimits(); refused >= 0 {
			p.mu.Lock()
			p.total--
			p.dialing--
			if c := p.popIdle(); c != nil {
				p.retireLocked(c) // the pool's own idle connection holds a slot too
				p.mu.Unlock()
				c.closeFor(errEvictedDedicated)
				continue
			}
			if p.limitMoved(refused, gens) {
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			for _, l := range p.limits {
				l.evictIdle(p)
			}
			p.mu.Lock()
			if err := p.queueDedicated(ctx); err != nil {
				return nil, err
			}
			continue
		}
		return p.dialDedicated(ctx, adjust)
	}
}

// errEvictedDedicated is why an idle connection was closed for a dedicated one.
var errEvictedDedicated = errors.New("idle connection closed to make room for a dedicated (replication) connection")

// queueDedicated waits in the pool's queue, p.mu held (and released here), until a
// connection is released or capacity frees; a connection handed over is closed, its
// place being what the caller waits for. It returns the error that ends the wait.
func (p *Pool) queueDedicated(ctx context.Context) error {
	w := waiterPool.Get().(*waiter)
	w.since, w.deadline, w.expired, w.l, w.gaveUp = time.Now(), time.Time{}, false, nil, nil
	p.waiters.push(w)
	p.mu.Unlock()
	c, err := p.wait(ctx, w, false, 0)
	waiterPool.Put(w) // out of the queue and its channel drained
	if c != nil {
		p.retire(c, errEvictedDedicated)
	}
	return err
}

// dialDedicated dials the connection Dedicated counted (p.total, p.dialing and a slot of
// each limit are taken).
func (p *Pool) dialDedicated(ctx context.Context, adjust func(*Target)) (*Conn, error) {
	p.mu.Lock()
	timeout, target := p.opts.ConnectTimeout, p.opts.Target
	p.mu.Unlock()
	t := *target()
	t.Params = t.Params.Clone()
	if adjust != nil {
		adjust(&t)
	}
	c, err := dialTarget(ctx, p, &t, timeout)
	for err == nil && p.markedStale(c) {
		// RECONNECT came during the dial: the connection may have reached the host it
		// is meant to leave, and it would never be released to be closed (nor ended by
		// RECONNECT, which has run). Its slot is kept for another dial, as the caller
		// still waits for one.
		_ = c.nc.Close()
		c, err = dialTarget(ctx, p, &t, timeout)
	}
	p.mu.Lock()
	p.dialing--
	if err != nil {
		p.total--
		p.mu.Unlock()
		p.putLimits()
		p.wakeWaiters()
		return nil, err
	}
	c.dedicated = true
	c.state.Store(int32(StateActive))
	p.all[c] = struct{}{}
	p.stats.Connects++
	logConn, log := p.opts.LogConnections, p.opts.Logger
	p.mu.Unlock()
	if logConn {
		log.Info("server connected", zap.Uint64("server", c.ID), zap.String("addr", c.addr),
			zap.Uint32("pid", c.PID), zap.Stringer("local", c.LocalAddr()), zap.Bool("dedicated", true))
	}
	go c.run()
	return c, nil
}

// LeaseDedicated leases a connection from Dedicated to l; its reader then runs l's Pump.
// It fails when the connection is not dedicated, is leased already, or broke meanwhile
// (its reader found it closed while nobody leased it).
func (c *Conn) LeaseDedicated(l Lessee) error {
	if !c.dedicated {
		return fmt.Errorf("pool: connection %d is not dedicated", c.ID)
	}
	if !c.pool.lease(c, l) {
		return fmt.Errorf("server connection %d ended before its client could use it: %w", c.ID, ErrDedicated)
	}
	return nil
}

// Dedicated reports whether c is a dedicated connection (Pool.Dedicated).
func (c *Conn) Dedicated() bool { return c.dedicated }
