package proxy

import (
	"maps"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// SUSPEND and the clients that keep a server: one idle inside a transaction, or a
// session-mode client. PgBouncer's SUSPEND stops reading each socket once its buffer is
// empty and returns when every one is; such a client is suspended as it is, its server
// still linked, and what it sends next waits in the socket until RESUME. pgmux does the
// same: a linked client's next request waits for RESUME before it is dispatched
// (awaitResume), and SUSPEND counts a linked client suspended once nothing of its
// request is owed or unsent and it waits for its next one (restingServer).
//
// Who sees what: SUSPEND sets console.suspendedNow before it looks at any client. A
// client's goroutine advertises idleAt while it waits for the client's bytes (next) and
// reads suspendedNow after it has read a message; the loop marks a client busy (Event)
// before it reads its request and reads suspendedNow after (loopable). So a client that
// SUSPEND finds waiting holds whatever it reads next, and one it finds reading is not
// counted suspended until it waits again or rests in awaitResume.

// awaitResume holds the client's next request while the pooler is SUSPENDed, when the
// client keeps a server and its last request is answered: its message stays in pgmux's
// buffer, as PgBouncer leaves it in the socket, until RESUME. A message of a request
// still under way (a Sync after Parse and Bind, a pipelined Query) goes on: SUSPEND waits
// for that request's answer instead. A shutdown ends the wait with an error, and so do
// the client's departure (its peer closed, looked at every streamGoneCheck) and a kill
// (KILL_CLIENT, a timeout), which closed the socket already.
func (s *Session) awaitResume() error {
	if !s.atRest() {
		return nil
	}
	c := s.srv.console
	c.mu.Lock()
	if !c.suspended {
		c.mu.Unlock()
		return nil
	}
	c.resting[s] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.resting, s)
		c.mu.Unlock()
	}()
	return s.untilResumed()
}

// untilResumed waits while the pooler is SUSPENDed (awaitResume, holdStream): nil at
// RESUME, errShuttingDown at a shutdown, errLeftSuspended once the client has left (its
// peer closed its socket, looked at every streamGoneCheck) or was ended (a kill, a
// timeout: its socket closed already).
func (s *Session) untilResumed() error {
	c := s.srv.console
	tick := time.NewTicker(streamGoneCheck)
	defer tick.Stop()
	for {
		c.mu.Lock()
		held, ch := c.suspended, c.changed
		c.mu.Unlock()
		switch {
		case !held:
			return nil
		case s.closed.Load() || s.endWith.Load() != nil || s.peerClosedShared():
			return errLeftSuspended
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-c.ctx.Done():
			return errShuttingDown
		}
	}
}

// atRest reports whether the client keeps a server and owes it nothing: every request
// answered, none of pgmux's own queued.
func (s *Session) atRest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server != nil && s.sessionWork != nil && s.Pending == 0 && s.q.len() == 0
}

// restingServer returns the server of a client SUSPEND counts suspended with it, else
// nil: the client waits for its next request (its goroutine reads its socket, it waits on
// the loop, or awaitResume holds it: in resting, a copy of the console's set), nothing is left to write to it, and its server owes it nothing.
func (s *Session) restingServer(resting map[*Session]struct{}) *pool.Conn {
	_, held := resting[s]
	if !held && s.idleAt.Load() == 0 && !s.home().waitsOnLoop(s) {
		return nil
	}
	if !s.wmu.TryLock() {
		return nil // an answer is being relayed to it
	}
	defer s.unlockW()
	if s.wr.Buffered() > 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessionWork == nil || s.Pending != 0 || s.q.len() != 0 {
		return nil
	}
	return s.server
}

// suspendedAll reports whether SUSPEND's hold has taken full effect on pools: no server
// in a check or reset, and each one leased kept by a client counted suspended
// (restingServer). A replication client's server is left out: its relay holds itself
// (holdStream).
func (s *Server) suspendedAll(pools []*pool.Pool) bool {
	c := s.console
	c.mu.Lock()
	resting := maps.Clone(c.resting) // not held on: unlockW may write to a client
	c.mu.Unlock()
	rest := map[*pool.Conn]bool{}
	for _, sess := range s.Sessions() {
		if sess.entry == nil || sess.kind.replication() {
			continue
		}
		if sv := sess.restingServer(resting); sv != nil {
			rest[sv] = true
		}
	}
	for _, p := range pools {
		for _, sv := range p.Conns() {
			if sv.Dedicated() {
				continue
			}
			switch sv.State() {
			case pool.StateTested:
				return false
			case pool.StateActive:
				if !rest[sv] {
					return false
				}
			}
		}
	}
	return true
}

// loggingIn records a client from the start of its login (on) to its end (off), so that
// SUSPEND finds the logins under way (loginsBefore).
func (s *Server) loggingIn(sess *Session, on bool) {
	s.mu.Lock()
	mark(s.logins, sess, on)
	s.mu.Unlock()
}

// loginsBefore returns the clients that connected before t and are still logging in,
// but for those whose login waits for the hold to end (awaitPool): PgBouncer's SUSPEND
// counts its clients in login as active, waits for them, and past suspend_timeout closes
// them. A client that connects after SUSPEND began is not waited for: PgBouncer stops
// accepting meanwhile, and pgmux holds such a client's login until RESUME.
func (s *Server) loginsBefore(t time.Time) []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Session
	for sess := range s.logins {
		if _, waits := s.holding[sess]; !waits && sess.connectedAt < t.UnixNano() {
			out = append(out, sess)
		}
	}
	return out
}

// dropLogins closes, as PgBouncer's janitor does past suspend_timeout, the clients still
// logging in: FATAL 08P01 "suspend_timeout", PgBouncer's words and code.
func (s *Server) dropLogins(logins []*Session) {
	if len(logins) == 0 {
		return
	}
	s.log.Warn("SUSPEND: closing clients still logging in after suspend_timeout", zap.Int("clients", len(logins)))
	killAll(logins, func(*Session) *pgerr.Error {
		return s.suspendTimeoutFatal("The login did not finish within suspend_timeout (%v) of SUSPEND.")
	})
}

// suspendTimeoutFatal is the FATAL of a client SUSPEND closes at suspend_timeout, as
// PgBouncer closes it (disconnect_client with the reason "suspend_timeout": 08P01, its
// default code); detail says why, with a verb for suspend_timeout's value.
func (s *Server) suspendTimeoutFatal(detail string) *pgerr.Error {
	return pgerr.Fatal(pgerr.ProtocolViolation, "suspend_timeout").WithDetail(detail, s.Config().SuspendTimeout)
}
