package proxy

import (
	"errors"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// A cancel request for a request that waits for a server.
//
// To its client a request waiting in a full pool is a statement running: it was sent,
// and no answer has come. A cancel request then (libpq's PQcancel, psql's ^C,
// postgres.js' query.cancel(), asyncpg's and JDBC's query timeouts, which cancel and
// treat the statement as not done) found no server to forward to and was dropped: the
// request ran later, once a server came free, and its client got its rows, or a write
// it had given up on committed. PostgreSQL would have canceled it. So the request is
// taken out of the pool's queue (pool.Withdraw) and answered as PostgreSQL answers a
// canceled statement: 57014 "canceling statement due to user request", then
// ReadyForQuery (after the Sync, for the extended protocol). Nothing of it reached a
// server. A request not in the queue (a server was just handed to it, or it waits
// elsewhere: a direct slot, a paused database) is not affected, as a cancel that
// arrives at PostgreSQL before or after the statement runs is not.

// errCanceledWaiting is the wait's end a cancel request gives (acquireError).
var errCanceledWaiting = errors.New("the client canceled its request while it waited for a server connection")

// cancelWait ends the wait of the client's request, when it queues for a server.
func (s *Session) cancelWait() {
	s.mu.Lock()
	waiting := s.state == ClientWaiting && s.entry != nil
	s.mu.Unlock()
	if waiting {
		s.entry.pool.Withdraw(s, errCanceledWaiting)
	}
}

// canceledError is PostgreSQL's error for a statement canceled by its client.
func canceledError() *pgerr.Error {
	return pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request")
}
