package proxy

import (
	"maps"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// SUSPEND and the clients that keep a server. PgBouncer's SUSPEND stops reading each
// socket once its buffer is empty, clients first and their servers once every client is
// suspended, and returns when every one is: a client idle inside a transaction, or a
// session-mode client, is suspended as it is, its server still linked, and what it sends
// next waits in the socket until RESUME; a client whose query is still running is
// suspended as it is too, its answer waiting in the server's socket. pgmux does the same
// with its two relays of a link. The session goroutine holds a linked client's next
// request before it is dispatched (awaitResume), after flushing to the server what it
// forwarded. The server's reader holds the server's next message before it is relayed
// (holdAnswer), after flushing what it relayed, once the client's side is suspended:
// until then the client's side may be waiting on the server (a request being written to
// a server that is itself waiting for its answers to be read), as PgBouncer keeps
// reading a server until its client is suspended. SUSPEND counts a link suspended once
// both sides are (suspendedServer): its client waits for its next message or is held,
// and its server's reader waits for the server's bytes with all it relayed flushed, or is
// held.
//
// Who sees what: SUSPEND sets console.suspendedNow before it looks at any client. A
// client's goroutine advertises idleAt while it waits for the client's bytes (next) and
// reads suspendedNow after it has read a message; the loop marks a client busy (Event)
// before it reads its request and reads suspendedNow after (loopable). The server's
// reader marks itself quiet in Session.pumps (pumpQuiet) while it waits for the server's
// bytes or is held, and reads suspendedNow after it has read a message's header; the
// client loop's relay reads it under the client's writer lock (relayBatch). So a side
// that SUSPEND finds waiting holds whatever it reads next, and one it finds busy is not
// counted suspended until it waits again or is held.

// pumpQuiet is added to Session.pumps by a server reader inside Pump while it waits for
// the server's bytes with what it relayed flushed, or is held by SUSPEND (holdAnswer): the
// low bits count the readers inside Pump, these the quiet ones.
const (
	pumpQuiet  = 1 << 16
	pumpInside = pumpQuiet - 1
)

// awaitResume holds the client's next request while the pooler is SUSPENDed, when the
// client keeps a server: its message stays in pgmux's buffer, as PgBouncer leaves it in
// the socket, until RESUME. What was forwarded before it and not flushed yet (a pipelined
// request whose successor was already buffered) goes to the server first. A client
// without a server waits in the pool's hold instead. A shutdown ends the wait with an
// error, and so do the client's departure (its peer closed, looked at every
// streamGoneCheck) and a kill (KILL_CLIENT, a timeout), which closed the socket already.
func (s *Session) awaitResume() error {
	sv := s.linkedServer()
	if sv == nil {
		return nil
	}
	c := s.srv.console
	c.mu.Lock()
	suspended := c.suspended
	c.mu.Unlock()
	if !suspended {
		return nil
	}
	if err := s.flushServer(sv); err != nil {
		return s.forwardFailed(sv, err)
	}
	c.mu.Lock()
	c.resting[s] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.resting, s)
		c.mu.Unlock()
	}()
	return s.untilResumed()
}

// flushServer sends sv what was forwarded to it and not flushed yet, holding its write
// lock when its reader may write to it too (forwardLocked).
func (s *Session) flushServer(sv *pool.Conn) error {
	if st := linkOf(sv); st != nil && (s.prep == prepCache || s.readsLater()) {
		st.wmu.Lock()
		defer st.wmu.Unlock()
	}
	if sv.Wr.Buffered() == 0 {
		return nil
	}
	if err := sv.Wr.Flush(); err != nil {
		return &flushError{we: &wire.WriteError{Err: err}}
	}
	return nil
}

// holdAnswer is the server's reader's hold (Pump), between a message's header and its
// relay, while the pooler is SUSPENDed: once the client's side is suspended, the message
// waits in pgmux's buffer, as PgBouncer leaves it in the server's socket, until RESUME,
// after what was relayed before it is flushed (held: the reader holds the client's
// writer, in the middle of an answer, and keeps it). It returns at RESUME, at a shutdown,
// and once the client has left or is being ended, and the reader goes on as always (a
// kill's FATAL is told at the boundary, ending). It reports whether it relayed, the
// client's side busy: busy says it was found so already, since the reader last waited
// for the server, and is looked at once more without the grace of clientSuspendedSoon.
// A side busy that long waits on the server (a request the server reads only once this
// answer is out): a grace per message had the answer crawl, a millisecond a row, and
// SUSPEND wait on it (PgBouncer reads the server at full speed until its clients are
// suspended). SUSPEND cannot have counted the link since then, as this reader has not
// been quiet.
func (s *Session) holdAnswer(held, busy bool) bool {
	if busy && !s.clientSuspended() || !busy && !s.clientSuspendedSoon() {
		return true // its client's side may be waiting for this answer: relayed
	}
	if held && s.wr.Buffered() > 0 {
		if err := s.wr.Flush(); err != nil {
			s.clientWriteFailed()
			return false
		}
	}
	s.pumps.Add(pumpQuiet)
	defer s.pumps.Add(-pumpQuiet)
	if hook := testHookHold.Load(); hook != nil {
		(*hook)(false)
	}
	_ = s.untilResumed()
	if hook := testHookHold.Load(); hook != nil {
		(*hook)(true)
	}
	return false
}

// testHookHold, when set by a test, runs as holdAnswer begins to hold a server's message
// (false) and once the hold is over (true), on the server's reader.
var testHookHold atomic.Pointer[func(over bool)]

// clientSuspendedSoon reports whether the client's side of the link is suspended
// (clientSuspended), looking a few more times over a millisecond: a client goroutine that
// has just read a message is on its way to awaitResume, and an answer relayed meanwhile
// would reach the client after SUSPEND returned.
func (s *Session) clientSuspendedSoon() bool {
	for range 5 {
		if s.clientSuspended() {
			return true
		}
		time.Sleep(200 * time.Microsecond)
	}
	return s.clientSuspended()
}

// clientSuspended reports whether the client's side is suspended: its goroutine waits for
// the client's next message (next), the loop does, or awaitResume holds it.
func (s *Session) clientSuspended() bool {
	c := s.srv.console
	c.mu.Lock()
	_, held := c.resting[s]
	c.mu.Unlock()
	return held || s.idleAt.Load() != 0 || s.home().waitsOnLoop(s)
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

// suspendedServer returns the server of a client SUSPEND counts suspended with it, else
// nil: the client waits for its next request (its goroutine reads its socket, it waits on
// the loop, or awaitResume holds it: in resting, a copy of the console's set), and its
// server's reader relays nothing (relayQuiet).
func (s *Session) suspendedServer(resting map[*Session]struct{}) *pool.Conn {
	_, held := resting[s]
	if !held && s.idleAt.Load() == 0 && !s.home().waitsOnLoop(s) {
		return nil
	}
	if !s.relayQuiet() {
		return nil
	}
	return s.linkedServer()
}

// relayQuiet reports whether nothing is being relayed to the client: each server reader
// inside Pump is quiet (waits for the server's bytes, what it relayed flushed, or is held
// by holdAnswer), or none is and the client's writer is free with nothing left in it.
func (s *Session) relayQuiet() bool {
	p := s.pumps.Load()
	if inside := p & pumpInside; inside > 0 {
		return p/pumpQuiet == inside
	}
	if !s.wmu.TryLock() {
		return false // an answer is being relayed to it (the client loop's relay)
	}
	defer s.unlockW()
	return s.wr == nil || s.wr.Buffered() == 0 // nil: parked without a writer (detachLocked)
}

// suspendedAll reports whether SUSPEND's hold has taken full effect on pools: no server
// in a check or reset, and each one leased kept by a client counted suspended with it
// (suspendedServer). A replication client's server is left out: its relay holds itself
// (holdStream).
func (s *Server) suspendedAll(pools []*pool.Pool) bool {
	c := s.console
	c.mu.Lock()
	resting := maps.Clone(c.resting) // not held on while the clients' locks are tried
	c.mu.Unlock()
	rest := map[*pool.Conn]bool{}
	for _, sess := range s.Sessions() {
		if sess.entry == nil || sess.kind.replication() {
			continue
		}
		if sv := sess.suspendedServer(resting); sv != nil {
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

// Notifications and SUSPEND. PgBouncer stops reading every server while suspended, so a
// notification reaches no client until RESUME. pgmux's shared listener (listenmux) keeps
// reading its server, and each client's notifications wait in its queue (notifyBox)
// instead, in order, until RESUME writes them (sendHeldNotes). Nobody writes them
// meanwhile: not the listener's reader (Notify), and not SUSPEND's own goroutine when it
// lets go of a client's writer (relayQuiet, unlockW), which would wait on a client that
// does not read. The one exception is a ReadyForQuery relayed during SUSPEND: the
// notifications its fence ordered before it go first (awaitFence).
//
// A queue holds heldNotesMax bytes at most, and the notification that crossed it: then
// the listener reads no more of its server until RESUME (Backlog), as PgBouncer holds a
// buffer of pkt_buf per socket and reads no more. The rest wait in the server's socket
// and PostgreSQL's notification queue: none is lost, and no client can tell, since none
// is passed one before RESUME. Ending the client instead would have cost it the
// notifications and its session for an operator's SUSPEND.

// heldNotesMax bounds the bytes of notifications a client's queue holds for RESUME:
// PgBouncer's pkt_buf default, what it buffers of a socket.
const heldNotesMax = 4096

// notesHeld reports whether notifications wait for RESUME.
func (s *Session) notesHeld() bool { return s.srv.console.suspendedNow.Load() }

// Backlog returns, while the pooler is SUSPENDed and the client's queue holds
// heldNotesMax bytes or more, the channel closed at RESUME (listenmux.Subscriber): the
// shared listener reads no more until then. Else nil, for one atomic load when no
// SUSPEND holds.
func (s *Session) Backlog() <-chan struct{} {
	b := s.notes.Load()
	if b == nil || !s.notesHeld() || s.closed.Load() {
		return nil
	}
	b.mu.Lock()
	full := b.size >= heldNotesMax
	b.mu.Unlock()
	if !full {
		return nil
	}
	c := s.srv.console
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.suspended {
		return nil
	}
	return c.changed
}

// sendHeldNotes writes, once SUSPEND has ended, the notifications it held: each client's
// on a goroutine of its own, so that neither RESUME nor another client waits on a client
// that does not read. A client whose writer is busy gets them from its holder (unlockW),
// which sees the hold lifted: suspendedNow is cleared before this runs.
func (s *Server) sendHeldNotes() {
	for _, sess := range s.Sessions() {
		if !sess.notesPending() {
			continue
		}
		go func() {
			if sess.wmu.TryLock() {
				sess.drainNotify()
				sess.unlockW()
			}
		}()
	}
}
