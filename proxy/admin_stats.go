package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// sessionOps is what a session counts for SHOW STATS and the metrics, beyond SessionStats.
// in is written only by the session goroutine and out only by whichever goroutine relays
// the server's answers, so both are atomics read by the console; the other fields are
// guarded by Session.mu and updated where the relay already holds it (account, onReady,
// serverFor), which keeps the hot path free of extra locks and allocations.
type sessionOps struct {
	in, out atomic.Uint64 // bytes received from and sent to the client after login

	assignments   uint64 // servers linked to the client
	parses, binds uint64 // Parse and Bind messages the client sent
	// serverParses counts Parse messages written to servers: the client's that reached a
	// server, and pgmux's own (statements prepared on another server, re-prepared after
	// eviction or DDL); not the client Parses answered from a server's statement cache.
	// Written by whichever goroutine writes to the server, so an atomic.
	serverParses atomic.Uint64
	xactTime     time.Duration
	queryTime    time.Duration
	// qStart is the start of the request in progress; once it is answered, minus that
	// start, which SHOW CLIENTS' request_time shows (lastRequest); zero before the first.
	// Negated rather than a field of its own: sessionWork fills its size class.
	qStart  monoTime
	xStart  monoTime // start of the transaction in progress, or zero
	obs     *metrics.Observers
	retired bool // folded into the server's retired totals; guarded by both locks
}

// totals are a pool's cumulative counters (SHOW STATS_TOTALS, the _total metrics).
type totals struct {
	assignments, xacts, queries uint64
	parses, serverParses, binds uint64
	received, sent              uint64
	xactTime, queryTime         time.Duration
	waitTime                    time.Duration
}

func (t *totals) add(u *totals) {
	t.assignments += u.assignments
	t.xacts += u.xacts
	t.queries += u.queries
	t.parses += u.parses
	t.serverParses += u.serverParses
	t.binds += u.binds
	t.received += u.received
	t.sent += u.sent
	t.xactTime += u.xactTime
	t.queryTime += u.queryTime
	t.waitTime += u.waitTime
}

func (t totals) sub(u totals) totals {
	return totals{
		assignments: t.assignments - u.assignments, xacts: t.xacts - u.xacts, queries: t.queries - u.queries,
		parses: t.parses - u.parses, serverParses: t.serverParses - u.serverParses, binds: t.binds - u.binds, received: t.received - u.received,
		sent: t.sent - u.sent, xactTime: t.xactTime - u.xactTime, queryTime: t.queryTime - u.queryTime,
		waitTime: t.waitTime - u.waitTime,
	}
}

// sessionTotals reads a live session's counters; s.mu is held.
func (s *Session) sessionTotals() totals {
	return totals{
		assignments: s.ops.assignments, xacts: s.stats.Transactions, queries: s.stats.Queries,
		parses: s.ops.parses, serverParses: s.ops.serverParses.Load(), binds: s.ops.binds,
		received: s.ops.in.Load(), sent: s.ops.out.Load(),
		xactTime: s.ops.xactTime, queryTime: s.ops.queryTime, waitTime: s.stats.WaitTime,
	}
}

// noteSend runs, with s.mu held, for every client message about to be forwarded to the
// linked server, before account updates Pending and Unsynced. now is the caller's clock
// reading, or zero for none (one is then made if the message starts a request).
func (s *Session) noteSend(typ byte, now monoTime) {
	switch typ {
	case 'P':
		s.ops.parses++
		if s.prep == prepPass {
			s.ops.serverParses.Add(1) // forwarded as is; rewritten ones count where written
		}
	case 'B':
		s.ops.binds++
	}
	if s.Pending == 0 && !s.Unsynced { // the first message of a new request
		if now == 0 {
			now = monoNow()
		}
		s.ops.qStart = now
		if s.TxStatus == 'I' {
			s.ops.xStart = now
		}
	}
}

// noteReady runs, with s.mu held, when a ReadyForQuery for the client's own request
// arrives (after Pending and TxStatus are updated): it closes the query and, on 'I', the
// transaction, for SHOW STATS and the histograms; at is the loop's clock reading (zero: none).
func (s *Session) noteReady(status byte, at time.Time) {
	s.ops.out.Add(6) // the ReadyForQuery itself
	if s.ops.qStart <= 0 {
		return
	}
	now := monoOrNow(at)
	obs := s.observers()
	q := now.sub(s.ops.qStart)
	s.ops.queryTime += q
	obs.Query.Observe(q)
	s.ops.qStart = -s.ops.qStart
	if s.Pending > 0 || s.Unsynced {
		s.ops.qStart = now // the next pipelined request runs from here
	}
	if status == 'I' && s.ops.xStart != 0 {
		x := now.sub(s.ops.xStart)
		s.ops.xactTime += x
		obs.Xact.Observe(x)
		s.ops.xStart = 0
	}
}

// monoTime is an instant in 8 bytes where a time.Time takes 24 (a session keeps two): the
// time on the monotonic clock since monoBase, plus one so that zero means none.
type monoTime int64

// monoBase is the origin of monoTime, set once at start.
var monoBase = time.Now()

// monoNow reads the monotonic clock alone (time.Since: one vDSO call, where time.Now makes
// two, the wall clock's too).
func monoNow() monoTime { return monoTime(time.Since(monoBase)) + 1 }

// monoOrNow is t as a monoTime (a loop's clock reading), or now when t is zero.
func monoOrNow(t time.Time) monoTime {
	if t.IsZero() {
		return monoNow()
	}
	return monoOf(t)
}

// monoOf is t, a clock reading already made, as a monoTime (no clock read).
func monoOf(t time.Time) monoTime { return monoTime(t.Sub(monoBase)) + 1 }

// sub is the time from u to t.
// sub is t - u, at least zero: t may be a loop's clock reading, taken at its wake-up,
// and u a goroutine's a moment later.
func (t monoTime) sub(u monoTime) time.Duration { return max(time.Duration(t-u), 0) }

// Time is t as a time.Time, or the zero Time for none.
func (t monoTime) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return monoBase.Add(time.Duration(t - 1))
}

// lastRequest is when the client's latest request began, in progress or answered, or
// the zero Time before its first.
func (o *sessionOps) lastRequest() time.Time {
	if o.qStart < 0 {
		return (-o.qStart).Time()
	}
	return o.qStart.Time()
}

// noteAcquire runs, with s.mu held, when a server has just been linked to the client
// after waiting for it.
func (s *Session) noteAcquire(waited time.Duration) {
	s.ops.assignments++
	s.observers().Wait.Observe(waited)
}

// observers returns the session's pool histograms, resolving them once; s.mu is held.
func (s *Session) observers() *metrics.Observers {
	if s.ops.obs == nil {
		s.ops.obs = s.srv.metrics.Observers(metrics.Key{DB: s.entry.key.db, User: s.entry.key.user})
	}
	return s.ops.obs
}

// retire folds a finished session's counters into its pool's retired totals, so the
// cumulative figures never go down when clients leave.
func (s *Session) retire() {
	if s.entry == nil {
		return
	}
	c := s.srv.console
	c.mu.Lock()
	s.mu.Lock()
	if w := s.sessionWork; w != nil && !w.ops.retired {
		if !s.entry.removed.Load() { // a removed database's figures went with it (closeRemoved)
			t := s.sessionTotals()
			c.retiredAcc(s.entry.key).add(&t)
		}
		w.ops.retired = true
	}
	s.mu.Unlock()
	c.mu.Unlock()
}

// retiredAcc is the retired totals of pool key, made on first use; c.mu is held.
func (c *consoleState) retiredAcc(key poolKey) *totals {
	acc := c.retired[key]
	if acc == nil {
		acc = &totals{}
		c.retired[key] = acc
	}
	return acc
}

// poolSnap is one pool's state and counters at one instant, shared by SHOW and the
// Prometheus collector.
type poolSnap struct {
	key    poolKey
	entry  *poolEntry // nil for a pool that has been removed by a reload
	stats  pool.Stats
	totals totals

	clActive, clWaiting, clIdle int // cl_active counts idle logged-in clients too, as PgBouncer does
	clWaitingDirect             int // of clWaiting: waiting for a direct slot (direct_pool_size)
	maxWait                     time.Duration
}

// maxWaitAll is the longest wait of the pool's waiting clients, whatever they wait for.
func (p *poolSnap) maxWaitAll() time.Duration { return max(p.stats.MaxWait, p.maxWait) }

// noteWaiting counts a waiting client of the pool; sess.mu is held.
func (p *poolSnap) noteWaiting(sess *Session, since time.Time, now time.Time) {
	p.clWaiting++
	if sess.waitKind == waitDirect {
		p.clWaitingDirect++
	}
	if w := now.Sub(since); w > p.maxWait {
		p.maxWait = w
	}
}

// snapshot gathers every pool's state and counters: retired totals plus live sessions.
func (s *Server) snapshot() []*poolSnap {
	sessions := s.Sessions()
	s.dropGoneWaiters(sessions) // a client that left while waiting is not counted (gone.go)
	byKey := make(map[poolKey]*poolSnap)
	var order []*poolSnap
	get := func(k poolKey) *poolSnap {
		p := byKey[k]
		if p == nil {
			p = &poolSnap{key: k}
			byKey[k] = p
			order = append(order, p)
		}
		return p
	}
	for _, e := range s.pools.all() {
		p := get(e.key)
		p.entry = e
		p.stats = e.pool.Stats()
	}
	now := time.Now()
	for _, sess := range s.waitingLogins() {
		p := get(sess.entry.key)
		sess.mu.Lock()
		if waiting, since := sess.waitingLocked(); waiting {
			p.noteWaiting(sess, since, now)
		}
		sess.mu.Unlock()
	}
	c := s.console
	c.mu.Lock()
	for k, t := range c.retired {
		get(k).totals.add(t)
	}
	for _, sess := range sessions {
		if sess.entry == nil {
			continue
		}
		p := get(sess.entry.key)
		sess.mu.Lock()
		if w := sess.sessionWork; w != nil && !w.ops.retired { // none: parked, counters retired (shed)
			t := sess.sessionTotals()
			p.totals.add(&t)
		}
		waiting, since := sess.waitingLocked()
		switch {
		case waiting:
			p.noteWaiting(sess, since, now)
		case sess.state == ClientActive:
			p.clActive++
		case sess.state == ClientIdle:
			p.clActive++
			p.clIdle++
		}
		sess.mu.Unlock()
	}
	c.mu.Unlock()
	sortSnaps(order)
	return order
}

// averager keeps the totals of one earlier instant so SHOW STATS can report rates over
// the last one or two stats_period, as PgBouncer does over its last stats_period. Console
// sessions and the metrics collector call it concurrently; mu guards its fields.
type averager struct {
	mu     sync.Mutex
	at     time.Time
	prev   map[string]totals // per database
	nextAt time.Time
	next   map[string]totals
}

// window returns the earlier totals per database and the time they were taken, and
// records cur as the next window's start once period (stats_period, read at each call,
// so that SET and RELOAD apply from the next call) has passed.
func (a *averager) window(now time.Time, cur map[string]totals, period time.Duration) (map[string]totals, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nextAt.IsZero() {
		a.nextAt, a.next = now, cur
	}
	if now.Sub(a.nextAt) >= period {
		a.at, a.prev = a.nextAt, a.next
		a.nextAt, a.next = now, cur
	}
	if a.prev == nil {
		return nil, time.Time{} // the caller averages since start
	}
	return a.prev, a.at
}

// noteError counts an ErrorResponse m relayed from the server to the client.
func (s *Session) noteError(m []byte) {
	s.ops.out.Add(uint64(len(m)))
	code := ""
	_ = wire.Fields(wire.Body(m), func(c byte, v []byte) {
		if c == 'C' {
			code = string(v)
		}
	})
	s.srv.metrics.ErrorSent(code)
}
