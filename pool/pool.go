package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Options configure a Pool. Target is called for each new connection so credentials and
// addresses picked up by a reload apply to the next dial.
type Options struct {
	Database string
	User     string
	Target   func() *Target

	Size           int
	MinSize        int
	ReserveSize    int
	ReserveTimeout time.Duration

	Lifetime       time.Duration
	IdleTimeout    time.Duration
	CheckQuery     string
	CheckDelay     time.Duration
	ResetQuery     string
	ConnectTimeout time.Duration
	// LoginRetry is how long after a failed connect or login new connections wait
	// before trying again (server_login_retry); clients queue meanwhile.
	LoginRetry time.Duration
	// FailoverTimeout bounds how long a client keeps queueing after its own dial found no
	// server fitting a multi-host target (failover_timeout), counted from that failure,
	// whatever its wait limit; 0 leaves it to the wait limit.
	FailoverTimeout time.Duration

	// Limits are shared caps across pools (max_db_connections, max_user_connections).
	Limits []*Limit
	Logger *zap.Logger
	// LogConnections and LogDisconnections log each server connection opened and closed
	// at info (log_connections, log_disconnections).
	LogConnections, LogDisconnections bool
}

func (o *Options) validate() error {
	if o.Target == nil {
		return errors.New("pool: Options.Target is required")
	}
	if o.Size < 0 || o.MinSize < 0 || o.ReserveSize < 0 {
		return errors.New("pool: sizes must not be negative")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return nil
}

// ErrClosed is returned by Acquire on a closed pool.
var ErrClosed = errors.New("pool is closed")

// ErrWaitTimeout is returned by Acquire when the caller's context expires while queued.
var ErrWaitTimeout = errors.New("timed out waiting for a server connection")

// ErrAbandoned is returned by Acquire when the caller's lessee was taken out of the queue
// by Abandon (its client left while it waited).
var ErrAbandoned = errors.New("gave up waiting for a server connection: the client left")

// Pool is a bounded set of server connections for one (database, user).
// mu guards every field below it.
type Pool struct {
	// readers counts its connections' reader goroutines running now (Readers); atomic.
	readers atomic.Int32

	mu      sync.Mutex
	opts    Options
	limits  []*Limit // opts.Limits, fixed at New: read without mu (Reconfigure keeps them)
	idle    []*Conn  // LIFO: the most recently used connection is reused first
	all     map[*Conn]struct{}
	total   int // open plus dialing
	dialing int
	// retiring counts the connections in total that the pool has decided to close and
	// whose readers have not exited yet (retireLocked): total keeps them, as the shared
	// limits do, until remove; decisions about the pool's size leave them out.
	retiring int
	logging  int // removed connections whose disconnection is being logged (Ended)
	waiters  waitQueue
	closed   bool
	paused   bool
	draining bool // while paused: close the connections (Pause), not only hold (Hold)
	resume   chan struct{}
	// aside lists each Acquire's waiter for its whole wait (acquireFrom): queued, waiting
	// for Resume or a dial, or between two of these, for Withdraw.
	aside    map[*waiter]struct{}
	stats    Stats
	stop     chan struct{}
	lastFail time.Time // last failed connect or login, for server_login_retry
	servedAt time.Time // when a connection last came back from a lessee (Check)
	health   health
	expiry   *time.Timer // expires AcquireTimeout waiters; expiryAt is when it fires
	expiryAt time.Time
	// staleBefore marks connections created before it for closing on release (RECONNECT).
	staleBefore time.Time
	// Until exclusiveUntil, a connection last leased before exclusiveAt is closed when
	// it would become idle (CloseIdleFor: a DROP DATABASE waits for the database's
	// sessions to end).
	exclusiveAt, exclusiveUntil time.Time
	// cluster is the multi-host target the pool last dialed; it wakes the pool's waiters
	// when a host comes up or changes role (hosts.go).
	cluster atomic.Pointer[Cluster]
}

// waiterPool recycles waiter records: a busy pool queues clients on every transaction.
var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan *Conn, 1)} }}

// waiter is one Acquire queued on a full pool.
//
// Owners: the acquiring goroutine fills since and deadline before it queues the waiter
// under p.mu, and alone receives from ch; expired is set under p.mu. Whoever takes the
// waiter off p.waiters under p.mu (a release, the expiry timer, a wake-up, Close) sends
// it one value on ch: a connection, or nil for "try again". The acquirer puts it back
// in waiterPool only once it is off the queue and ch is drained.
type waiter struct {
	ch       chan *Conn // a handed-off connection, or nil: capacity freed, try again
	since    time.Time
	deadline time.Time // for AcquireTimeout: when the pool's expiry timer gives up on it
	expired  bool      // set under p.mu before the expiry timer sends nil
	// l is the lessee queued, for a connection or for a slot of a shared limit (for
	// Abandon and Withdraw); gaveUp, the error its Acquire returns, is set under p.mu
	// before they send nil.
	l      Lessee
	gaveUp error
	// h, for a waiter queued by AcquireOrQueue, is told instead of ch (handoff.go).
	h Handoff
	// parked: the acquirer waits on ch outside the queue, for Resume or for the dial
	// begun for it (parkLocked); Withdraw ends that wait with nil. Under p.mu.
	parked bool
}

// Each Acquire that waits has one waiter from its first wait until it returns, listed in
// p.aside all that time (listLocked): queued, parked (for Resume, for a shared limit's
// answer, for a dial) and in between, where it runs its loop again (woken, a limit that
// freed a slot, Resume). Withdraw finds it there at any of these points: it takes a
// queued one out of the queue and a parked one out of its wait (nil on ch), and leaves
// one in between to find gaveUp at its next step (acquireFrom); none of it then gets a
// connection. A connection handed to it meanwhile goes back to the pool.

// listLocked returns the waiter listing l's wait, taking one and listing it on the
// first call (*w nil); p.mu is held. It returns the error l was withdrawn with before it
// was listed (WithdrawnEarly), when it was: the caller returns it rather than wait.
func (p *Pool) listLocked(w **waiter, l Lessee) (*waiter, error) {
	if *w == nil {
		if err := withdrawnEarly(l); err != nil {
			return nil, err
		}
		x := waiterPool.Get().(*waiter)
		x.since, x.deadline, x.expired, x.l, x.gaveUp, x.h, x.parked = time.Time{}, time.Time{}, false, l, nil, nil, false
		p.aside[x] = struct{}{}
		*w = x
	}
	return *w, nil
}

// WithdrawnEarly is a Lessee whose wait may have been given up on before the pool listed
// it, where Withdraw could not find it: its request was withdrawn (a cancel request)
// on its way to the pool. Withdrawn returns the error its Acquire is to return then, nil
// otherwise. The lessee records the withdrawal before it calls Withdraw, and the pool
// asks under its lock as it lists the wait: so either Withdraw finds the wait listed, or
// the pool finds the lessee withdrawn.
type WithdrawnEarly interface {
	Withdrawn() error
}

// withdrawnEarly is l's Withdrawn, for a WithdrawnEarly lessee; nil for another.
func withdrawnEarly(l Lessee) error {
	if e, ok := l.(WithdrawnEarly); ok {
		return e.Withdrawn()
	}
	return nil
}

// parkLocked marks w's acquirer as waiting on w.ch outside the queue; p.mu is held.
func (p *Pool) parkLocked(w *waiter) {
	if w != nil {
		w.parked = true
	}
}

// unparkLocked ends w's wait outside the queue and reports whether it was still on
// (false: Withdraw ended it, and sent nil on w.ch, which the caller receives); p.mu is
// held.
func (p *Pool) unparkLocked(w *waiter) bool {
	was := w.parked
	w.parked = false
	return was
}

// endWait unlists w, whose Acquire ends with c or err, and puts it back in waiterPool.
// Withdrawn meanwhile (gaveUp), the Acquire returns why instead, and c goes back to the
// pool: nothing of the lessee's was sent on it.
func (p *Pool) endWait(w *waiter, c *Conn, err error) (*Conn, error) {
	p.mu.Lock()
	delete(p.aside, w)
	gaveUp := w.gaveUp
	w.l, w.gaveUp = nil, nil
	p.mu.Unlock()
	waiterPool.Put(w) // out of the queue, not parked, its channel drained
	if gaveUp == nil {
		return c, err
	}
	if c != nil {
		c.Release(false)
	}
	return nil, gaveUp
}

// New creates a pool and starts its maintenance goroutine.
func New(opts Options) (*Pool, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Pool{opts: opts, limits: opts.Limits, all: make(map[*Conn]struct{}), stop: make(chan struct{}),
		aside: make(map[*waiter]struct{})}
	for _, l := range opts.Limits {
		l.register(p)
	}
	go p.maintain()
	return p, nil
}

// Reconfigure applies new sizes, timeouts and queries; connections over the new size are
// closed as they become idle.
func (p *Pool) Reconfigure(opts Options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	opts.Limits = p.opts.Limits
	p.opts = opts
	p.mu.Unlock()
	p.trimIdle()
	p.wakeWaiters()
	return nil
}

// Options returns the pool's current options.
func (p *Pool) Options() Options {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts
}

// TryAcquire leases an idle connection to l if one is ready and needs no health check,
// without waiting or dialing. It is the allocation-free fast path in front of Acquire.
func (p *Pool) TryAcquire(l Lessee) *Conn { return p.TryAcquireAt(l, time.Now()) }

// TryAcquireAt is TryAcquire with the caller's clock reading, made just before.
func (p *Pool) TryAcquireAt(l Lessee, now time.Time) *Conn {
	p.mu.Lock()
	if p.closed || p.paused || p.waiters.Len() > 0 {
		p.mu.Unlock()
		return nil
	}
	c := p.popIdle()
	if c == nil {
		p.mu.Unlock()
		return nil
	}
	fresh := (p.opts.CheckQuery == "" || c.idleFor(now) < p.opts.CheckDelay) &&
		(p.opts.Lifetime <= 0 || now.Sub(c.Created) <= p.opts.Lifetime)
	if !fresh {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	if c.idleBroken(now) || !p.leaseAt(c, l, now) {
		return nil // a broken one is left to its reader, which removes it
	}
	return c
}

// Acquire leases a connection to l, waiting in FIFO order until ctx is done.
func (p *Pool) Acquire(ctx context.Context, l Lessee) (*Conn, error) {
	return p.acquire(ctx, time.Time{}, l)
}

// AcquireTimeout is Acquire with a wait limit, without a context: one timer per pool
// expires its waiters, so leasing costs no timer or context per call. start is when the
// caller began to wait (its own clock reading, so the pool needs none): the limit runs
// from there, and so does the wait the pool's statistics count.
func (p *Pool) AcquireTimeout(l Lessee, start time.Time, timeout time.Duration) (*Conn, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = start.Add(timeout)
	}
	return p.acquireFrom(context.Background(), start, deadline, l, false)
}

// AcquireWoken is AcquireTimeout for a caller whose wait queued by AcquireOrQueue ended
// with ErrRetry: it was the waiter told that capacity was freed, so it may dial ahead of
// the others still queued, as a woken waiter of Acquire does.
func (p *Pool) AcquireWoken(l Lessee, start time.Time, timeout time.Duration) (*Conn, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = start.Add(timeout)
	}
	return p.acquireFrom(context.Background(), start, deadline, l, true)
}

func (p *Pool) acquire(ctx context.Context, deadline time.Time, l Lessee) (*Conn, error) {
	return p.acquireFrom(ctx, time.Time{}, deadline, l, false)
}

// acquireFrom is acquire for a caller that began to wait at start (zero: now). woken: a
// waiter was told that capacity was freed; it may dial even though others still queue
// behind it, or the freed capacity would go unused.
func (p *Pool) acquireFrom(ctx context.Context, start, deadline time.Time, l Lessee, woken bool) (*Conn, error) {
	var w *waiter // lists the wait, from its first step on (listLocked); nil while it has none
	c, err := p.acquireLoop(ctx, start, deadline, l, woken, &w)
	if w == nil {
		return c, err // leased at once, or failed before it waited
	}
	return p.endWait(w, c, err)
}

// acquireLoop is acquireFrom's loop; *wp is the waiter listing the wait once it has one.
func (p *Pool) acquireLoop(ctx context.Context, start, deadline time.Time, l Lessee, woken bool, wp **waiter) (*Conn, error) {
	// failedAt: when this client's own dial first failed transiently (failover_timeout).
	var failedAt time.Time
	for {
		p.mu.Lock()
		if w := *wp; w != nil && w.gaveUp != nil {
			gaveUp := w.gaveUp // withdrawn between two steps of its wait
			p.mu.Unlock()
			return nil, gaveUp
		}
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if p.paused {
			w, err := p.listLocked(wp, l)
			if err != nil {
				p.mu.Unlock()
				return nil, err
			}
			ch := p.resume
			p.parkLocked(w)
			p.mu.Unlock()
			var expire <-chan time.Time
			if !deadline.IsZero() {
				t := time.NewTimer(time.Until(deadline))
				defer t.Stop()
				expire = t.C
			}
			withdrawn := false
			select {
			case <-ch:
			case <-w.ch:
				withdrawn = true
			case <-expire:
				err = fmt.Errorf("%w: pool is paused", ErrWaitTimeout)
			case <-ctx.Done():
				err = fmt.Errorf("%w: pool is paused", ErrWaitTimeout)
			}
			p.mu.Lock()
			if !p.unparkLocked(w) && !withdrawn {
				<-w.ch // Withdraw's nil, sent before it unparked w
			}
			gaveUp := w.gaveUp
			p.mu.Unlock()
			switch {
			case gaveUp != nil:
				return nil, gaveUp
			case err != nil:
				return nil, err
			}
			p.testRetry(retryResumed)
			continue
		}
		if c := p.popIdle(); c != nil {
			p.mu.Unlock()
			if !p.healthy(ctx, c) || !p.lease(c, l) {
				continue
			}
			return c, nil
		}
		if (p.waiters.Len() == 0 || woken) && p.total < p.opts.Size && !p.backingOffLocked() {
			w, err := p.listLocked(wp, l)
			if err != nil {
				p.mu.Unlock()
				return nil, err
			}
			if w.since.IsZero() {
				w.since = start // what a refusal by a shared limit queues it with (zero: then)
			}
			c, end, err := p.dialLocked(ctx, deadline, w)
			switch end {
			case dialRetry:
				woken = true
				p.testRetry(retryLimit)
				continue
			case dialWithdrawn:
				return nil, err
			}
			if err != nil {
				if woken && p.queueAgain(ctx, deadline, err) {
					deadline = p.failoverDeadline(&failedAt, deadline)
					continue
				}
				return nil, err
			}
			if !p.lease(c, l) {
				continue // it broke at once; its removal frees the slot
			}
			return c, nil
		}
		if start.IsZero() {
			start = time.Now()
		}
		w, err := p.listLocked(wp, l)
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.queueLocked(w, start, deadline)
		if p.backingOffLocked() {
			p.startProbeLocked()
		}
		reserve := p.opts.ReserveSize > 0
		reserveAfter := p.opts.ReserveTimeout
		p.mu.Unlock()
		c, err := p.wait(ctx, w, reserve, reserveAfter)
		expired, gaveUp := p.waitEnded(w)
		if gaveUp != nil {
			if c != nil {
				p.putIdle(c) // handed before Withdraw took the wait: the pool's again
			}
			return nil, gaveUp
		}
		if err != nil {
			return nil, err
		}
		if c == nil {
			if expired {
				return nil, fmt.Errorf("%w: waited %v", ErrWaitTimeout, time.Since(w.since).Round(time.Millisecond))
			}
			woken = true
			p.testRetry(retryWoken)
			continue
		}
		// Handed over by putIdleLocked, which marked it active and used at its clock reading.
		if !p.leaseAt(c, l, time.Time{}) {
			woken = true // it broke before it could be leased; its removal frees the slot
			continue
		}
		return c, nil
	}
}

// failoverDeadline shortens the wait limit of a client queueing again after its dial
// failed to FailoverTimeout from its first such failure; failedAt records that failure.
func (p *Pool) failoverDeadline(failedAt *time.Time, deadline time.Time) time.Time {
	p.mu.Lock()
	fo := p.opts.FailoverTimeout
	p.mu.Unlock()
	if fo <= 0 {
		return deadline
	}
	if failedAt.IsZero() {
		*failedAt = time.Now()
	}
	if limit := failedAt.Add(fo); deadline.IsZero() || limit.Before(deadline) {
		return limit
	}
	return deadline
}

// dialEnd is how dialLocked ended, besides its connection or error.
type dialEnd uint8

const (
	dialDone      dialEnd = iota // the connection, or why there is none
	dialRetry                    // a shared limit refused, then freed capacity: try again
	dialWithdrawn                // Withdraw took the lessee out of its wait: the error is its reason
)

// dialLocked is entered with p.mu held and returns with it released. w lists the wait of
// the lessee the dial is for (listLocked); nil for the pool's own dials (min_pool_size's
// top-up, a readiness probe). dialRetry means a shared limit refused, then freed capacity
// (or the pool got an idle connection meanwhile), and the caller should try again. While
// the limit refuses, a lessee waits here like any waiter, until ctx is done or deadline
// (query_wait_timeout) passes; the pool's own dial gets nothing at once. Withdraw ends a
// lessee's wait, for the limit as for the dial (dialFor).
func (p *Pool) dialLocked(ctx context.Context, deadline time.Time, w *waiter) (*Conn, dialEnd, error) {
	p.total++
	p.dialing++
	// Parked as the dial is counted (SHOW POOLS' sv_login), before it asks the shared
	// limits: Withdraw ends the wait from now on, not only once the limit has answered.
	p.parkLocked(w)
	p.mu.Unlock()
	gens := p.limitGens()
	if refused := p.takeLimits(); refused >= 0 {
		if hook := testHookLimitRefused.Load(); hook != nil {
			(*hook)(p)
		}
		p.mu.Lock()
		p.total--
		p.dialing--
		if w == nil {
			p.mu.Unlock()
			return nil, dialDone, nil
		}
		if !p.unparkLocked(w) {
			<-w.ch // Withdraw's nil
			gaveUp := w.gaveUp
			p.mu.Unlock()
			return nil, dialWithdrawn, gaveUp
		}
		// A slot freed or a connection came back between the refusal and now: its
		// wake-up (kick, putIdleLocked) found no waiter to give it to.
		if len(p.idle) > 0 || p.limitMoved(refused, gens) {
			p.mu.Unlock()
			return nil, dialRetry, nil
		}
		// A client that waited before this dial (a reserve dial, a try again) keeps its
		// start: SHOW POOLS' maxwait and the wait stats count its whole wait.
		since := w.since
		if since.IsZero() {
			since = time.Now()
		}
		p.queueLocked(w, since, deadline)
		p.mu.Unlock()
		for _, lim := range p.limits {
			lim.evictIdle(p)
		}
		c, err := p.wait(ctx, w, false, 0)
		expired, gaveUp := p.waitEnded(w)
		switch {
		case gaveUp != nil:
			if c != nil {
				p.putIdle(c) // handed before Withdraw took the wait: the pool's again
			}
			return nil, dialWithdrawn, gaveUp
		case c != nil:
			return c, dialDone, nil
		case err != nil:
			return nil, dialDone, err
		case expired:
			return nil, dialDone, fmt.Errorf("%w: waited %v for max_db_connections/max_user_connections",
				ErrWaitTimeout, time.Since(w.since).Round(time.Millisecond))
		}
		return nil, dialRetry, nil
	}
	if w != nil {
		return p.dialFor(ctx, w)
	}
	c, err := p.dialed(p.dial(ctx))
	return c, dialDone, err
}

// dialFor dials for the lessee whose wait w lists, parked (dialLocked): Withdraw can take
// it out of the wait while the dial runs (it has taken a slot of the pool and of the
// shared limits): its Acquire then ends at once, and the connection, once logged in, is
// the pool's, for the next waiter or idle, as one min_pool_size opens; nothing of the
// lessee's reaches it. A failed dial is counted and logged as any. The dial runs on a
// goroutine of its own, which does the dial's accounting (dialed) whoever waits for it;
// it looks at w only while the acquirer has not given up on it (gone): w is the
// acquirer's, recycled once its Acquire returns.
func (p *Pool) dialFor(ctx context.Context, w *waiter) (*Conn, dialEnd, error) {
	type result struct {
		c   *Conn
		err error
	}
	done := make(chan result, 1)
	gone := false // under p.mu: the acquirer left the wait, withdrawn
	go func() {
		c, err := p.dialed(p.dial(ctx))
		p.mu.Lock()
		if !gone && p.unparkLocked(w) {
			p.mu.Unlock()
			done <- result{c, err}
			return
		}
		if c == nil {
			p.mu.Unlock()
			return
		}
		p.putIdleLocked(c, time.Now()) // withdrawn meanwhile
	}()
	select {
	case r := <-done:
		return r.c, dialDone, r.err
	case <-w.ch: // Withdraw's nil: it unparked w
		p.mu.Lock()
		gone = true
		gaveUp := w.gaveUp
		p.mu.Unlock()
		return nil, dialWithdrawn, gaveUp
	}
}

// dialed accounts for a dial that has ended (p.dial's results): a connection opened, or
// a failure, which server_login_retry may hold new dials back after. It returns the
// connection, its reader started, or the dial's error.
func (p *Pool) dialed(c *Conn, t *Target, err error) (*Conn, error) {
	network, addr := t.Network()
	if t.Cluster != nil {
		p.follow(t.Cluster)
		// Several hosts: the error names each; the cluster's monitor watches them, so the
		// probe has no one address to try.
		network, addr = "", "several hosts"
	}
	p.mu.Lock()
	p.dialing--
	if err != nil {
		p.total--
		p.stats.ConnectFailures++
		// An answer from the server (bad database, password) is given to every client at
		// once; an unreachable server is retried only after server_login_retry.
		if transient(err) && p.opts.LoginRetry > 0 {
			p.lastFail = time.Now()
			time.AfterFunc(p.opts.LoginRetry, p.wakeWaiters)
		}
		logFail := p.noteFailLocked(network, addr, t, err)
		p.mu.Unlock()
		logFail()
		p.putLimits()
		p.wakeWaiters()
		return nil, err
	}
	p.all[c] = struct{}{}
	p.stats.Connects++
	logOK := p.noteOKLocked(addr)
	logConn := p.opts.LogConnections
	log := p.opts.Logger
	p.mu.Unlock()
	if logOK != nil {
		logOK()
	}
	if logConn {
		log.Info("server connected", zap.Uint64("server", c.ID), zap.String("addr", addr),
			zap.Uint32("pid", c.PID), zap.Stringer("local", c.LocalAddr()))
	}
	go c.run()
	return c, nil
}

// queueLocked queues w, waiting since since, until deadline (zero: none); p.mu is held.
func (p *Pool) queueLocked(w *waiter, since, deadline time.Time) {
	w.since, w.deadline, w.expired = since, deadline, false
	p.waiters.push(w)
	if !deadline.IsZero() {
		p.armExpiryLocked(deadline)
	}
}

// waitEnded reads how the queued wait of w, off the queue and its channel drained, ended:
// expired by the pool's timer, or given up on (Withdraw: the error).
func (p *Pool) waitEnded(w *waiter) (expired bool, gaveUp error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return w.expired, w.gaveUp
}

// dial opens and logs in one connection; it returns the target it tried.
func (p *Pool) dial(ctx context.Context) (*Conn, *Target, error) {
	p.mu.Lock()
	timeout := p.opts.ConnectTimeout
	target := p.opts.Target
	p.mu.Unlock()
	t := target()
	c, err := dialTarget(ctx, p, t, timeout)
	return c, t, err
}

func (p *Pool) wait(ctx context.Context, w *waiter, reserve bool, reserveAfter time.Duration) (*Conn, error) {
	var reserveC <-chan time.Time
	if reserve {
		t := time.NewTimer(reserveAfter)
		defer t.Stop()
		reserveC = t.C
	}
	if reserveC == nil && ctx.Done() == nil {
		// The common wait (AcquireTimeout: the pool's timer expires waiters by handing
		// them nil): a plain receive parks and wakes for less than a select.
		return <-w.ch, nil
	}
	for {
		select {
		case c := <-w.ch:
			return c, nil
		case <-reserveC:
			reserveC = nil
			if c, ok := p.tryReserve(ctx, w); ok {
				return c, nil
			}
		case <-ctx.Done():
			p.mu.Lock()
			removed := p.dropWaiter(w)
			p.mu.Unlock()
			if !removed {
				// Handed something just now: take it rather than lose a connection.
				if c := <-w.ch; c != nil {
					return c, nil
				}
			}
			return nil, fmt.Errorf("%w: %w", ErrWaitTimeout, context.Cause(ctx))
		}
	}
}

// tryReserve dials a reserve connection for a waiter that has waited reserve_pool_timeout.
func (p *Pool) tryReserve(ctx context.Context, w *waiter) (*Conn, bool) {
	p.mu.Lock()
	if p.total >= p.opts.Size+p.opts.ReserveSize || !p.dropWaiter(w) {
		p.mu.Unlock()
		return nil, false
	}
	p.stats.ReserveUsed++
	// Out of the queue, w is parked for the dial (and its wait for a shared limit), where
	// Withdraw finds it (listed: listLocked).
	c, end, err := p.dialLocked(ctx, w.deadline, w)
	if end == dialWithdrawn {
		return nil, true // its Acquire returns w.gaveUp (acquireFrom)
	}
	if err != nil || c == nil {
		// Back in the queue at the front: the waiter keeps its place; unless Withdraw took
		// its wait meanwhile (out of the queue, not parked: gaveUp is all it set).
		p.mu.Lock()
		gaveUp := w.gaveUp
		if gaveUp == nil {
			p.waiters.pushFront(w)
		}
		p.mu.Unlock()
		return nil, gaveUp != nil
	}
	return c, true
}

func (p *Pool) dropWaiter(w *waiter) bool {
	return p.waiters.removeFirst(func(x *waiter) bool { return x == w }) != nil
}

func (p *Pool) popIdle() *Conn {
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if c.unfit() {
			p.retireLocked(c)
			c.closeFor(errUnfit) // its host went down or changed role (hosts.go)
			continue
		}
		if !c.closing.Load() {
			return c
		}
	}
	return nil
}

// healthy refuses a connection whose server has ended it while it sat idle (idleBroken)
// and runs server_check_query on one idle longer than server_check_delay.
func (p *Pool) healthy(ctx context.Context, c *Conn) bool {
	if c.idleBroken(time.Now()) {
		return false // left to its reader, which removes it with the server's reason
	}
	p.mu.Lock()
	q, delay, lifetime := p.opts.CheckQuery, p.opts.CheckDelay, p.opts.Lifetime
	p.mu.Unlock()
	if lifetime > 0 && time.Since(c.Created) > lifetime {
		p.retire(c, errLifetime)
		return false
	}
	if q == "" || time.Since(c.LastUsed()) < delay {
		return true
	}
	c.state.Store(int32(StateTested))
	done := make(chan error, 1)
	if err := c.startInternal(q, func(err error) { done <- err }); err != nil {
		p.retire(c, fmt.Errorf("%w: %w", errCheck, err))
		return false
	}
	select {
	case err := <-done:
		if err != nil {
			p.retire(c, fmt.Errorf("%w: %w", errCheck, err))
			return false
		}
		return true
	case <-ctx.Done():
		p.retire(c, fmt.Errorf("%w: no answer before the client gave up", errCheck))
		return false
	case <-c.closed:
		return false
	}
}

// lease hands c to l; it fails when c's reader has already found c broken while idle
// (the caller then leases another).
func (p *Pool) lease(c *Conn, l Lessee) bool { return p.leaseAt(c, l, time.Now()) }

// leaseAt is lease with the caller's clock reading; a zero one leaves c's last use as it
// is (a connection handed to a waiter was marked at the handover).
func (p *Pool) leaseAt(c *Conn, l Lessee, now time.Time) bool {
	var box *lesseeBox
	if b, ok := l.(boxedLessee); ok {
		box = b.LeaseBox() // no allocation per lease
	}
	if box == nil {
		box = &lesseeBox{l}
	}
	if !c.lessee.CompareAndSwap(nil, box) {
		return false
	}
	if c.lr.on.Load() {
		if _, ok := l.(LoopLessee); !ok {
			c.Recall() // its Pump runs on the reader goroutine (loopread.go)
		}
	}
	c.state.Store(int32(StateActive))
	if !now.IsZero() {
		c.lastUsed.Store(now.UnixNano())
	}
	return true
}

// release takes back a connection whose lease ended cleanly; now is the caller's clock
// reading (zero: none, read here).
func (p *Pool) release(c *Conn, reset bool, now time.Time) {
	if c.closing.Load() || c.releaseHeld(reset) {
		return
	}
	if now.IsZero() {
		now = time.Now() // one clock reading for the lifetime check, lastUsed and a waiter's wait
	}
	p.mu.Lock()
	q := p.opts.ResetQuery
	var over error
	switch {
	case p.closed:
		over = errPoolClosed
	case p.paused && p.draining:
		over = errPaused
	case p.total-p.retiring > p.opts.Size+p.opts.ReserveSize:
		over = errOverSize
	case p.opts.Lifetime > 0 && now.Sub(c.Created) > p.opts.Lifetime:
		over = errLifetime
	case !p.staleBefore.IsZero() && c.Created.Before(p.staleBefore): // zero until a RECONNECT: not compared
		over = errReconnect
	case c.unfit():
		over = errUnfit // its host went down or changed role: not for the next waiter either
	case c.dedicated:
		over = ErrDedicated // one client's alone (Dedicated): never another's
	}
	if over == nil && (!reset || q == "") {
		p.putIdleLocked(c, now) // the common release: one lock, not two
		return
	}
	if over != nil {
		p.retireLocked(c)
	}
	p.mu.Unlock()
	if over != nil {
		c.closeFor(over)
		return
	}
	c.state.Store(int32(StateTested))
	err := c.startInternal(q, func(err error) {
		if err != nil {
			p.opts.Logger.Warn("server_reset_query failed; closing server connection", zap.Error(err))
			c.closeFor(fmt.Errorf("%w: %w", errReset, err))
			return
		}
		if c.Tracker != nil {
			c.Tracker.ServerReset(q)
		}
		p.putIdle(c)
	})
	if err != nil {
		c.closeFor(fmt.Errorf("%w: %w", errReset, err))
	}
}

func (p *Pool) putIdle(c *Conn) {
	now := time.Now()
	p.mu.Lock()
	p.putIdleLocked(c, now)
}

// putIdleLocked hands c to the first waiter or puts it on the idle list; p.mu is held
// and released here. now is the caller's clock reading. A pool closed meanwhile (while
// c ran server_reset_query, or was being dialed by fillMin) closes c instead: nothing
// would ever take it from the idle list of a closed pool, nor close it there. So is c
// when RECONNECT marked it meanwhile (created before the mark). Before the mark of
// CloseIdleFor ends, c last leased before it goes to a waiter or is closed.
func (p *Pool) putIdleLocked(c *Conn, now time.Time) {
	if p.closed {
		p.mu.Unlock()
		c.closeFor(errPoolClosed)
		return
	}
	var over error
	switch {
	case p.paused && p.draining:
		over = errPaused // back from server_reset_query, or dialed by fillMin, after Pause
	case !p.staleBefore.IsZero() && c.Created.Before(p.staleBefore): // zero until a RECONNECT: not compared
		over = errReconnect // marked by RECONNECT in server_reset_query: release checked before
	}
	if over != nil {
		p.retireLocked(c)
		p.mu.Unlock()
		c.closeFor(over)
		return
	}
	// Out when a statement needing the database alone came (CloseIdleFor): its lease
	// began before (leaseAt marks lastUsed), or its reset or check ran then, or its dial
	// (min_pool_size) had begun.
	out := !p.exclusiveUntil.IsZero() && now.Before(p.exclusiveUntil) && c.lastUsed.Load() < p.exclusiveAt.UnixNano()
	c.lastUsed.Store(now.UnixNano())
	p.servedAt = now
	if p.waiters.Len() > 0 {
		w := p.waiters.pop()
		p.stats.noteWait(max(now.Sub(w.since), 0)) // now may be a loop's reading, from before w queued
		c.state.Store(int32(StateActive))
		p.mu.Unlock()
		w.give(c)
		return
	}
	if out {
		p.retireLocked(c)
		p.mu.Unlock()
		c.closeFor(errExclusive)
		return
	}
	c.state.Store(int32(StateIdle))
	p.idle = append(p.idle, c)
	limits := p.limits
	p.mu.Unlock()
	for _, l := range limits {
		// A pool whose clients queue because the shared cap refused their dial gets the
		// capacity an idle connection holds; otherwise they would wait for their timeout
		// while connections sit idle here.
		if q := l.starved(p); q != nil {
			l.evictIdle(q)
			return
		}
	}
}

// retireLocked records that the pool has decided to close c (retiring), at that moment
// and not when c's reader has exited: until then the next decision about the pool's size
// (a release, trimIdle) would still count c and close a connection that should stay. A
// connection its reader has already removed is not counted. p.mu is held.
func (p *Pool) retireLocked(c *Conn) {
	if c.retired || c.detached {
		return
	}
	if _, ok := p.all[c]; ok {
		c.retired = true
		p.retiring++
	}
}

// retire closes c for reason, recorded first as the pool's decision (retireLocked).
func (p *Pool) retire(c *Conn, reason error) {
	p.mu.Lock()
	p.retireLocked(c)
	p.mu.Unlock()
	c.closeFor(reason)
}

// testHookLimitRefused, when set by a test, runs when a shared limit has refused p a
// slot, before p queues the caller.
var testHookLimitRefused atomic.Pointer[func(*Pool)]

// retry says where acquireFrom goes round its loop again after a step of its wait
// (testHookRetry).
type retry uint8

const (
	retryWoken   retry = iota // a queued waiter told to try again
	retryLimit                // a shared limit that refused, then freed a slot
	retryResumed              // Resume ended a hold
)

// testHookRetry, when set by a test, runs when acquireFrom goes round its loop again
// after a step of its wait, before it takes the pool's lock.
var testHookRetry atomic.Pointer[func(*Pool, retry)]

// testRetry runs testHookRetry.
func (p *Pool) testRetry(r retry) {
	if hook := testHookRetry.Load(); hook != nil {
		(*hook)(p, r)
	}
}

// testHookRemove, when set by a test, runs when a connection's reader has exited, before
// the pool forgets the connection.
var testHookRemove atomic.Pointer[func(*Conn)]

// remove forgets a connection whose reader goroutine has exited.
func (p *Pool) remove(c *Conn, err error) {
	c.closeFor(err)
	if hook := testHookRemove.Load(); hook != nil {
		(*hook)(c)
	}
	p.mu.Lock()
	if p.opts.LogDisconnections {
		log, age := p.opts.Logger, time.Since(c.Created).Round(time.Millisecond)
		p.logging++ // the pool has not Ended until the line is written
		defer func() {
			log.Info("server disconnected", zap.Uint64("server", c.ID), zap.String("addr", c.addr),
				zap.Uint32("pid", c.PID), zap.Duration("age", age), zap.NamedError("reason", c.CloseReason()))
			p.mu.Lock()
			p.logging--
			p.mu.Unlock()
		}()
	}
	if _, ok := p.all[c]; ok {
		delete(p.all, c)
		if !c.detached {
			p.total--
		}
		if c.retired {
			p.retiring--
		}
		for i, x := range p.idle {
			if x == c {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
	}
	p.mu.Unlock()
	close(c.closed)
	p.putLimits()
	p.wakeWaiters()
}

// Abandon takes l's request out of its wait, when it waits in the pool: queued, waiting
// for the end of a hold (Pause, Hold), for a slot of a shared limit (max_db_connections,
// max_user_connections) or for the connection being dialed for it (which then goes to
// the pool: dialFor), or between two of these steps (listLocked). Its Acquire returns ErrAbandoned. It reports whether l waited so; a
// lessee already handed a connection is not, and its caller finds out itself that its
// client left.
func (p *Pool) Abandon(l Lessee) bool { return p.Withdraw(l, ErrAbandoned) }

// Withdraw is Abandon with the error err (non-nil) for l's Acquire to return instead.
func (p *Pool) Withdraw(l Lessee, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := range p.aside {
		if w.l != l {
			continue
		}
		// An Acquire's wait (listLocked): queued, parked, or between two steps, where it
		// finds gaveUp at its next.
		delete(p.aside, w)
		w.gaveUp = err
		if p.dropWaiter(w) || p.unparkLocked(w) {
			w.give(nil)
		}
		return true
	}
	// A wait queued by AcquireOrQueue.
	if w := p.waiters.removeFirst(func(w *waiter) bool { return w.l == l }); w != nil {
		w.gaveUp = err
		w.give(nil)
		return true
	}
	return false
}

// armExpiryLocked makes the pool's expiry timer fire by deadline; p.mu is held.
func (p *Pool) armExpiryLocked(deadline time.Time) {
	if !p.expiryAt.IsZero() && !deadline.Before(p.expiryAt) {
		return
	}
	p.expiryAt = deadline
	d := time.Until(deadline)
	if p.expiry == nil {
		p.expiry = time.AfterFunc(d, p.expireWaiters)
		return
	}
	p.expiry.Reset(d)
}

// expireWaiters gives up on waiters past their deadline and re-arms for the next one.
func (p *Pool) expireWaiters() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var next time.Time
	p.waiters.filter(func(w *waiter) bool {
		if !w.deadline.IsZero() && !now.Before(w.deadline) {
			w.expired = true
			w.give(nil)
			return false
		}
		if !w.deadline.IsZero() && (next.IsZero() || w.deadline.Before(next)) {
			next = w.deadline
		}
		return true
	})
	p.expiryAt = time.Time{}
	if !next.IsZero() {
		p.armExpiryLocked(next)
	}
}

// backingOffLocked reports whether server_login_retry still holds new connections back
// after a failure; p.mu is held.
func (p *Pool) backingOffLocked() bool {
	return p.opts.LoginRetry > 0 && !p.lastFail.IsZero() && time.Since(p.lastFail) < p.opts.LoginRetry
}

// wakeWaiters tells the first waiter to retry when there is room to dial.
func (p *Pool) wakeWaiters() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiters.Len() > 0 && p.total < p.opts.Size && !p.backingOffLocked() {
		p.waiters.pop().give(nil)
	}
}

// limitGens reads how many slots each shared limit has given back so far (Limit.freed).
func (p *Pool) limitGens() (gens [2]uint64) {
	for i, l := range p.limits[:min(len(p.limits), len(gens))] {
		gens[i] = l.freed()
	}
	return gens
}

// limitMoved reports whether the shared limit p.limits[i] gave a slot back since
// limitGens read gens. Only the limit that refused is looked at: the ones before it that
// takeLimits gave back were p's own.
func (p *Pool) limitMoved(i int, gens [2]uint64) bool {
	return i >= len(gens) || p.limits[i].freed() != gens[i]
}

// takeLimits takes a slot of each shared limit, or none: it returns the index of the
// limit that refused (after giving back what it took of the others), -1 when all gave one.
func (p *Pool) takeLimits() int {
	for i, l := range p.limits {
		if !l.take() {
			for _, m := range p.limits[:i] {
				m.put()
			}
			return i
		}
	}
	return -1
}

func (p *Pool) putLimits() {
	for _, l := range p.limits {
		l.put()
	}
}

// Ended reports whether a closed pool has no connection left: every one it opened has
// been closed and forgotten by its reader goroutine (which logs the disconnection), and
// no dial is under way. A server stopping waits for it (proxy Server.Stop), so that
// nothing of the pool runs, or logs, after the stop returns.
func (p *Pool) Ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed && len(p.all) == 0 && p.dialing == 0 && p.logging == 0
}

// Close closes idle connections now and the others as they are released.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	waiters := p.waiters.takeAll()
	close(p.stop)
	if p.paused {
		p.paused, p.draining = false, false
		close(p.resume)
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeFor(errPoolClosed)
	}
	for _, w := range waiters {
		w.give(nil)
	}
	for _, l := range p.limits {
		l.unregister(p)
	}
	if cl := p.cluster.Swap(nil); cl != nil {
		cl.unfollow(p)
	}
}
