package proxy

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Timeouts that watch a session from outside its goroutines: query_timeout,
// idle_transaction_timeout and transaction_timeout. Each is one lazily made timer,
// armed and disarmed at state changes under Session.mu; a generation number makes a
// timer that fires after being re-armed or disarmed do nothing. client_idle_timeout is a
// read deadline set by the session goroutine itself (see relay).

type timerKind int

const (
	timerQuery timerKind = iota
	timerIdleTx
	timerTx
	numTimers
)

// timeLimits are the timeouts in force for a session, copied from the configuration when
// it logs in and at each link so the hot path reads no shared state.
type timeLimits struct {
	query, idleTx, tx, clientIdle time.Duration
}

type sessionTimers struct {
	t   [numTimers]*time.Timer
	gen [numTimers]uint64
}

// arm starts timer k for d (0 = the timeout is off); s.mu is held.
func (s *Session) arm(k timerKind, d time.Duration) {
	if d <= 0 {
		return
	}
	s.timers.gen[k]++
	gen := s.timers.gen[k]
	if t := s.timers.t[k]; t != nil {
		t.Stop()
	}
	s.timers.t[k] = time.AfterFunc(d, func() { s.timerFired(k, gen) })
}

// disarm stops timer k; s.mu is held.
func (s *Session) disarm(k timerKind) {
	if t := s.timers.t[k]; t != nil {
		s.timers.gen[k]++
		t.Stop()
		s.timers.t[k] = nil
	}
}

func (s *Session) disarmAll() {
	for k := timerKind(0); k < numTimers; k++ {
		s.disarm(k)
	}
}

func (s *Session) timerFired(k timerKind, gen uint64) {
	s.mu.Lock()
	if s.timers.gen[k] != gen || s.server == nil {
		s.mu.Unlock()
		return
	}
	c := s.server
	cfg := s.srv.Config()
	s.mu.Unlock()
	switch k {
	case timerQuery:
		s.log.Info("query_timeout: cancelling the running query", zap.Duration("query_timeout", cfg.QueryTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Cancel(ctx); err != nil {
			s.log.Warn("query_timeout: cancel failed", zap.Error(err))
		}
	case timerIdleTx:
		s.log.Info("idle_transaction_timeout: closing client", zap.Duration("idle_transaction_timeout", cfg.IdleTransactionTimeout))
		s.closeFromOutside(pgerr.Fatal(pgerr.IdleInTransactionTimeout,
			"terminating connection due to idle-in-transaction timeout (idle_transaction_timeout %v)", cfg.IdleTransactionTimeout))
	case timerTx:
		s.log.Info("transaction_timeout: closing client", zap.Duration("transaction_timeout", cfg.TransactionTimeout))
		s.closeFromOutside(pgerr.Fatal(pgerr.IdleInTransactionTimeout,
			"terminating connection due to transaction timeout (transaction_timeout %v)", cfg.TransactionTimeout))
	}
}

// closeFromOutside ends a session from a timer: the message is written only if no
// response is being relayed to the client at that moment.
func (s *Session) closeFromOutside(pe *pgerr.Error) {
	if s.wmu.TryLock() {
		s.fatal(pe)
		s.wmu.Unlock()
		return
	}
	s.closed.Store(true)
	_ = s.nc.Close()
}
