package proxy

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Timeouts that watch a session from outside its goroutines: query_timeout,
// idle_transaction_timeout and transaction_timeout. Each is one timer, made the first
// time it is armed and re-armed with Reset after that (arming allocates nothing: it
// happens once per request), armed and disarmed at state changes under Session.mu. A
// firing acts only if its arming is still the current one and due; a generation number
// tells queryTimedOut whether the link moved on while it sent a cancel.
// client_idle_timeout is a read deadline set by the session goroutine itself (see relay).

type timerKind int

const (
	timerQuery timerKind = iota
	timerIdleTx
	timerTx
	numTimers
)

// parkAfter is how long a client must be idle before its goroutine is let go while the
// server holds parkManyClients clients or more; below that, parkAfterFew. Parking saves
// memory (a parked client keeps its descriptor and 240 bytes; a waiting goroutine with its
// net.Conn and working state, a few KB), but its next request pays a resume: a new
// goroutine, the net.Conn rebuilt (about a dozen system calls), the working state made
// again: a transaction of a client idle between requests cost pgmux several times a busy
// client's (bench/README.md, "Clients idle between requests"). Most deployments hold a
// few hundred clients that each send a request every few seconds (application pools):
// they keep their goroutines, at most a few MB in all, and a server holding thousands
// parks them after a second as before.
const (
	parkAfter       = time.Second
	parkAfterFew    = 10 * time.Second
	parkManyClients = 1000
)

// parkDelay is how long an idle client waits before it parks, for the number of clients
// the server holds now.
func parkDelay(clients int64) time.Duration {
	if clients >= parkManyClients {
		return parkAfter
	}
	return parkAfterFew
}

// timeLimits are the timeouts in force for a session's link, copied from the
// configuration when it logs in and at each link so the hot path reads no shared state
// (client_idle_timeout, which the parker reads, is Session.clientIdle).
type timeLimits struct {
	query, idleTx, tx time.Duration
}

// sessionTimers are a session's armed timeouts, guarded by Session.mu: the session
// goroutine and the server's reader arm and disarm them, and each timer's callback
// (timerFired, on a runtime timer goroutine) checks its arming under mu.
type sessionTimers struct {
	t   [numTimers]*time.Timer
	gen [numTimers]uint64
	// due is when timer k's current arming fires; zero while none is pending. A callback
	// of an earlier arming that runs late (its timer had fired when it was re-armed or
	// disarmed) finds due zero or still ahead, and does nothing.
	due [numTimers]time.Time
	// cancelled: query_timeout fired and a cancel was sent; if the query is still running
	// when the timer fires again, the server is not answering and the link is cut.
	cancelled bool
}

// arm starts timer k for d (0 = the timeout is off); s.mu is held.
func (s *Session) arm(k timerKind, d time.Duration) {
	if d <= 0 {
		return
	}
	if s.timers == nil {
		s.timers = new(sessionTimers)
	}
	s.timers.gen[k]++
	if k == timerQuery {
		s.timers.cancelled = false
	}
	s.timers.due[k] = time.Now().Add(d) // before the timer's own clock reading: it fires at or after due
	if t := s.timers.t[k]; t != nil {
		t.Reset(d)
		return
	}
	s.timers.t[k] = time.AfterFunc(d, func() { s.timerFired(k) })
}

// disarm stops timer k; s.mu is held.
func (s *Session) disarm(k timerKind) {
	if s.timers == nil {
		return
	}
	if t := s.timers.t[k]; t != nil {
		s.timers.gen[k]++
		s.timers.due[k] = time.Time{}
		t.Stop()
	}
}

func (s *Session) disarmAll() {
	for k := timerKind(0); k < numTimers; k++ {
		s.disarm(k)
	}
}

// fired reports whether a firing of timer k at now is for its current arming, which it
// then ends, and returns that arming's generation.
func (tm *sessionTimers) fired(k timerKind, now time.Time) (gen uint64, ok bool) {
	due := tm.due[k]
	if due.IsZero() || now.Before(due) {
		return 0, false
	}
	tm.due[k] = time.Time{}
	return tm.gen[k], true
}

// timerFired runs on timer k's goroutine. It acts once per arming: only if the arming it
// fired for is still pending and due (a late callback of an earlier arming is not).
func (s *Session) timerFired(k timerKind) {
	s.mu.Lock()
	if s.server == nil {
		s.mu.Unlock()
		return
	}
	gen, ok := s.timers.fired(k, time.Now())
	if !ok {
		s.mu.Unlock()
		return
	}
	c := s.server
	cfg := s.srv.Config()
	s.mu.Unlock()
	switch k {
	case timerQuery:
		s.queryTimedOut(c, cfg.QueryTimeout, cfg.CancelWaitTimeout, gen)
	case timerIdleTx:
		s.log().Info("idle_transaction_timeout: closing client", zap.Duration("idle_transaction_timeout", cfg.IdleTransactionTimeout))
		s.killWith(pgerr.Fatal(pgerr.IdleInTransactionTimeout,
			"terminating connection due to idle-in-transaction timeout (idle_transaction_timeout %v)", cfg.IdleTransactionTimeout))
	case timerTx:
		s.log().Info("transaction_timeout: closing client", zap.Duration("transaction_timeout", cfg.TransactionTimeout))
		s.killWith(pgerr.Fatal(pgerr.TransactionTimeout,
			"terminating connection due to transaction timeout (transaction_timeout %v)", cfg.TransactionTimeout))
	}
}

// queryTimedOut handles query_timeout: the first time, it cancels the running query and
// re-arms for cancel_wait_timeout; if the query still runs then, the server is not
// answering (stopped, partitioned): the client gets 57014 and the server is closed, so
// that nobody waits on it forever.
func (s *Session) queryTimedOut(c *pool.Conn, queryTimeout, cancelWait time.Duration, gen uint64) {
	if cancelWait <= 0 {
		cancelWait = 10 * time.Second
	}
	s.mu.Lock()
	second := s.timers.cancelled
	s.mu.Unlock()
	if second {
		s.log().Warn("query_timeout: the server did not answer the cancel request; closing the client and its server",
			zap.Duration("query_timeout", queryTimeout), zap.Duration("cancel_wait_timeout", cancelWait))
		s.killWith(pgerr.Fatal(pgerr.QueryCanceled,
			"canceling statement due to query_timeout (%v); the server did not respond to the cancel request", queryTimeout))
		c.Discard(errors.New("query_timeout: server did not answer the cancel request"))
		return
	}
	s.log().Info("query_timeout: cancelling the running query", zap.Duration("query_timeout", queryTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), cancelWait)
	defer cancel()
	c.HoldForCancel() // not handed to another client before the cancel lands (server.go)
	if s.linkedServer() == c {
		if err := c.Cancel(ctx); err != nil {
			s.log().Warn("query_timeout: cancel failed", zap.Error(err))
		}
	}
	c.UnholdCancel()
	s.mu.Lock()
	if s.timers.gen[timerQuery] == gen && s.server == c {
		s.arm(timerQuery, cancelWait)
		s.timers.cancelled = true
	}
	s.mu.Unlock()
}
