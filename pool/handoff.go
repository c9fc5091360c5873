package pool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Handoff is told the outcome of a wait queued by AcquireOrQueue, on whichever goroutine
// ended the wait (a release, the expiry timer, Close): the connection, leased to nobody
// yet (TakeHanded leases it), or nil with why. It must not block or call into the pool.
type Handoff interface {
	Handed(c *Conn, err error)
}

// ErrRetry is a queued wait's outcome when no connection came but the pool changed (room
// to dial, a host back, the pool closed): the caller acquires again the ordinary way.
var ErrRetry = errors.New("try acquiring again")

// AcquireOrQueue is for a caller that must not block (an event loop). It leases an idle
// connection to l when one is ready, as TryAcquireAt does but behind any queued waiters'
// claims; when none is and the pool can only be waited for (at its size, no reserve, not
// paused, not backing off), it queues l as a waiter whose outcome goes to h, and reports
// queued. When the pool has room to dial (and no shared limit, reserve or backoff to ask
// first) it queues l too and dials a connection of the pool's own for the queue's head
// (dialAhead), as PgBouncer launches a server connection for a waiting client: a crowd of
// first requests at a pool that is still filling (an idle pooler's first load) waits on
// the loop rather than each going to a goroutine of its own. Otherwise it returns
// neither: the caller acquires the ordinary way (which may dial, check health or wait for
// a reserve connection, or return the error of a lessee withdrawn before it queued:
// WithdrawnEarly).
func (p *Pool) AcquireOrQueue(l Lessee, h Handoff, start time.Time, timeout time.Duration) (c *Conn, queued bool) {
	p.mu.Lock()
	if p.closed || p.paused {
		p.mu.Unlock()
		return nil, false
	}
	if p.waiters.Len() == 0 {
		if c = p.popIdle(); c != nil {
			fresh := (p.opts.CheckQuery == "" || c.idleFor(start) < p.opts.CheckDelay) &&
				(p.opts.Lifetime <= 0 || start.Sub(c.Created) <= p.opts.Lifetime)
			if !fresh {
				p.idle = append(p.idle, c)
				p.mu.Unlock()
				return nil, false
			}
			p.mu.Unlock()
			if c.idleBroken(start) || !p.leaseAt(c, l, start) {
				return nil, false // a broken one is left to its reader, which removes it
			}
			return c, true
		}
	}
	// Withdrawn on its way here (WithdrawnEarly): the ordinary way returns why at once.
	if p.opts.ReserveSize > 0 || p.backingOffLocked() || withdrawnEarly(l) != nil {
		p.mu.Unlock()
		return nil, false
	}
	ahead := p.total < p.opts.Size
	if ahead {
		p.total++
		p.dialing++
	}
	w := waiterPool.Get().(*waiter)
	w.since, w.expired, w.l, w.gaveUp, w.h = start, false, l, nil, h
	w.deadline = time.Time{}
	if timeout > 0 {
		w.deadline = start.Add(timeout)
		p.armExpiryLocked(w.deadline)
	}
	p.waiters.push(w)
	p.mu.Unlock()
	if ahead {
		p.startDialAhead()
	}
	return nil, true
}

// startDialAhead dials the connection AcquireOrQueue counted (p.total, p.dialing) once the
// shared caps (max_db_connections, max_user_connections) give it a slot, on a goroutine
// of its own. A cap that refuses leaves the queue waiting as a refused dial's waiter does
// (dialLocked): for a connection released to it, or a slot freed (kick, wakeWaiters), with
// an idle connection of another pool under the cap closed to make room.
func (p *Pool) startDialAhead() {
	gens := p.limitGens()
	if refused := p.takeLimits(); refused >= 0 {
		p.mu.Lock()
		p.total--
		p.dialing--
		p.mu.Unlock()
		for _, lim := range p.limits {
			lim.evictIdle(p)
		}
		if p.limitMoved(refused, gens) {
			p.wakeWaiters() // a slot freed meanwhile, whose kick found the dial counted
		}
		return
	}
	go p.dialAhead()
}

// dialAhead opens a connection for the pool's waiters: counted in p.total and p.dialing
// by AcquireOrQueue, it goes to the queue's head when logged in (putIdle), or idle if the
// wait ended meanwhile. A failed dial is told to the queue's head, as a request that
// dials for itself is told its dial's failure (08006 for a server that cannot be
// reached); where the failure leaves room to dial at once (no server_login_retry
// backoff), dialed has woken a waiter first to try again the ordinary way.
func (p *Pool) dialAhead() {
	ctx, cancel := context.WithTimeout(context.Background(), dialAheadLimit)
	defer cancel()
	c, err := p.dialed(p.dial(ctx))
	if err == nil {
		p.putIdle(c)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiters.Len() > 0 {
		w := p.waiters.pop()
		w.gaveUp = err // the wait's outcome: its Acquire, or its Handoff, returns it
		w.give(nil)
	}
}

// dialAheadLimit bounds a dial no client waits on in its own Acquire; server_connect_timeout
// bounds each attempt well within it.
const dialAheadLimit = 15 * time.Second

// TakeHanded leases c, handed to a Handoff, to l; false when c broke meanwhile (its
// removal frees its slot; acquire again).
func (p *Pool) TakeHanded(c *Conn, l Lessee) bool { return p.leaseAt(c, l, time.Time{}) }

// give ends w's wait with c (nil: expired, given up on, or try again). Whoever took w off
// the queue under p.mu calls it, once.
func (w *waiter) give(c *Conn) {
	h := w.h
	if h == nil {
		w.ch <- c
		return
	}
	var err error
	switch {
	case c != nil:
	case w.expired:
		err = fmt.Errorf("%w: waited %v", ErrWaitTimeout, time.Since(w.since).Round(time.Millisecond))
	case w.gaveUp != nil:
		err = w.gaveUp
	default:
		err = ErrRetry
	}
	w.h, w.l = nil, nil
	waiterPool.Put(w) // no one else holds it: it is off the queue and ch was never used
	h.Handed(c, err)
}
