package proxy

import (
	"time"

	"go.uber.org/zap"
)

// Waiting clients, as SHOW POOLS (cl_waiting, maxwait), SHOW CLIENTS (state waiting) and
// the metrics show them, as PgBouncer does: a client is waiting while it queues for a
// server of its pool, for a direct slot (direct_pool_size) to pin its server, or, during
// login, while its database is held by PAUSE, SUSPEND or KILL or while the pool's first
// server logs in.

// waitKind is what a waiting client waits for beyond a server of its pool.
type waitKind uint8

const (
	waitNone   waitKind = iota
	waitDirect          // a direct slot, to keep its server for session state
	waitLogin           // the end of a PAUSE/KILL hold, or the pool's first server, at login
)

// waitingLocked reports whether the client waits and since when; s.mu is held.
func (s *Session) waitingLocked() (bool, time.Time) {
	if s.state != ClientWaiting && s.waitKind == waitNone {
		return false, time.Time{}
	}
	return true, time.Unix(0, s.waitSince)
}

// holdLogin makes a client that waits during login visible (on) or forgets it (off).
func (s *Server) holdLogin(sess *Session, on bool) {
	sess.mu.Lock()
	if on {
		sess.waitKind, sess.waitSince = waitLogin, time.Now().UnixNano()
	} else {
		sess.waitKind = waitNone
	}
	sess.mu.Unlock()
	s.mu.Lock()
	mark(s.holding, sess, on)
	s.mu.Unlock()
}

// mark puts sess in set (on) or takes it out; the set's lock is held.
func mark(set map[*Session]struct{}, sess *Session, on bool) {
	if on {
		set[sess] = struct{}{}
	} else {
		delete(set, sess)
	}
}

// waitingLogins returns the clients waiting during login.
func (s *Server) waitingLogins() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.holding))
	for sess := range s.holding {
		out = append(out, sess)
	}
	return out
}

// directWarnEvery limits the warning about clients waiting for a direct slot to one line
// per pool per period.
const directWarnEvery = time.Minute

// warnDirectWait logs, at most once a minute per pool, that a client waits for a direct
// slot: why it wants one, and the setting to raise.
func (s *Session) warnDirectWait(reason pinReason) {
	e := s.entry
	now := time.Now().UnixNano()
	last := e.directWarnAt.Load()
	if last != 0 && now-last < int64(directWarnEvery) {
		return
	}
	if !e.directWarnAt.CompareAndSwap(last, now) {
		return
	}
	n, waiting, max := e.direct.used()
	s.srv.log.Warn("client waits for a direct connection: every direct_pool_size slot of the database is pinned by other clients",
		zap.Uint64("client", s.id), zap.String("db", s.dbName), zap.String("user", s.user),
		zapReason(reason), zap.Int("direct_pool_size", max), zap.Int("in_use", n), zap.Int("waiting", waiting+1),
		zap.String("hint", "raise direct_pool_size, or have clients release session state sooner (UNLISTEN, pg_advisory_unlock, DISCARD ALL)"))
}
