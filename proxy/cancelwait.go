package proxy

import (
	"errors"
	"sync/atomic"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// A cancel request for a request that waits inside pgmux.
//
// To its client a request waiting in pgmux is a statement running: it was sent, and no
// answer has come. A cancel request then (libpq's PQcancel, psql's ^C, postgres.js'
// query.cancel(), asyncpg's and JDBC's query timeouts, which cancel and treat the
// statement as not done) found no server to forward to and was dropped: the request ran
// later, once the wait ended, and its client got its rows, or a write it had given up on
// committed. PostgreSQL would have canceled it. So the wait is ended and the request
// answered as PostgreSQL answers a canceled statement: 57014 "canceling statement due to
// user request", then ReadyForQuery (after the Sync, for the extended protocol). Nothing
// of it reached a server. The waits so ended:
//
//   - queued for a server of a full pool, held by a paused database (PAUSE, SUSPEND,
//     KILL), waiting for a slot of max_db_connections or max_user_connections, or for
//     the server pgmux dials for it: pool.Withdraw takes the request out of the queue,
//     or out of the wait for RESUME, for the shared limit or for the dial. A server
//     dialed so goes to the pool once logged in (the next request's, or idle), as one
//     min_pool_size opens: nothing of the canceled request is sent on it. The pool
//     finds the request at every point of its wait, also between two of these steps
//     (woken to try again, a limit's slot freed, RESUME), until it has a server;
//   - waiting for a server of a standby (a read routed there, replica.go): the
//     standby's pool withdraws it (replicaWait), and the read does not go on to the
//     primary;
//   - on its way to a wait: counted waiting (serverFor), not yet in the pool's. The
//     cancel is recorded first (cancelAsked), then Withdraw looks; the pool, as it
//     begins the wait, asks the session (Withdrawn, under the pool's lock), so one of
//     the two finds it and the wait ends at once. A server handed to it meanwhile (an
//     idle one, leased at once) is given back before anything is sent (serverFor);
//   - waiting for a direct slot (direct_pool_size) to pin its server: the budget's
//     withdraw. A client inside a transaction has its server linked, and idle, then:
//     the cancel is not forwarded (PostgreSQL ignores a cancel for a backend that runs
//     nothing), and the statement fails through the server (raiseViaServer), which
//     aborts the transaction as a canceled statement does. When the server still runs
//     something of the client's sent before (a pipeline), that is what runs now, and
//     the cancel goes to PostgreSQL as usual.
//
// A request no longer waiting (a server or a slot was just handed to it) is not
// affected, as a cancel that arrives at PostgreSQL after the statement ran is not. A
// client still in its login is not waiting on a statement: it has no cancel key yet
// (BackendKeyData comes with the login's answer, after the wait, and pgmux registers the
// key only then, as PostgreSQL sends it only once the backend is ready), so no cancel
// request can name it; as with PostgreSQL, a client gives up a login by closing its
// connection. A cancel request that comes before pgmux has read the request it was sent
// after (the client sent the query, then the cancel, and pgmux took the cancel first)
// finds the client idle and is dropped, and the request runs: PostgreSQL does the same
// for a backend still reading its next command (it ignores the cancel rather than fail
// a statement not yet read), and its protocol promises no effect for a cancel (one may
// arrive too early or too late). PgBouncer likewise drops a cancel for a client with no
// request in progress ("cancel request for idle client").

// errCanceledWaiting is the wait's end a cancel request gives (acquireError, waitDirect).
var errCanceledWaiting = errors.New("the client canceled its request while it waited")

// cancelWait ends the wait of the client's request, when it waits inside pgmux, and
// reports whether it did.
func (s *Session) cancelWait() bool {
	s.mu.Lock()
	queued := s.state == ClientWaiting && s.entry != nil
	direct := s.waitKind == waitDirect && !s.runningLocked()
	var replica *pool.Pool
	if s.sessionWork != nil { // a waiting request's session has it
		if queued && !direct {
			s.cancelAsked.Store(true) // before Withdraw: see Withdrawn
		}
		replica = s.replicaWait
	}
	s.mu.Unlock()
	switch {
	case direct:
		return s.entry.direct.withdraw(s, errCanceledWaiting)
	case queued:
		if replica == nil || !replica.Withdraw(s, errCanceledWaiting) {
			s.entry.pool.Withdraw(s, errCanceledWaiting)
		}
		// Found waiting or not, the request is answered 57014: the wait it is in ends
		// now, one it has yet to begin ends at once (Withdrawn), and a server it was just
		// handed is given back (serverFor).
		return true
	}
	return false
}

// Withdrawn is the pool's question (pool.WithdrawnEarly) as the session's request begins
// to wait there: a cancel request came for it on its way (after serverFor counted it
// waiting, before the pool listed its wait, where Withdraw found nothing), and it is
// to end at once. cancelWait records the cancel before it calls Withdraw, and the pool
// asks under its lock as it lists the wait: one or the other finds it.
func (s *Session) Withdrawn() error {
	if s.sessionWork != nil && s.cancelAsked.Load() {
		return errCanceledWaiting
	}
	return nil
}

// runningLocked reports whether a statement the client sent before runs on its linked
// server, or is queued to (a Query, a FunctionCall, an Execute not yet answered); s.mu
// is held.
func (s *Session) runningLocked() bool {
	run := false
	if s.sessionWork != nil {
		s.q.ring.Each(func(e expect) { run = run || !e.Hide && (e.Kind == 'Q' || e.Kind == 'F' || e.Kind == 'E') })
	}
	return run
}

// canceledError is PostgreSQL's error for a statement canceled by its client.
func canceledError() *pgerr.Error {
	return pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request")
}

// testHookWaitBegins, when set by a test, runs as a request begins to wait for a server
// (serverFor counts it waiting), before it asks the pool.
var testHookWaitBegins atomic.Pointer[func(*Session)]
