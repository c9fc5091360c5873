package proxy

import (
	"time"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// A simple Query sent inside a read-only transaction open on a standby that ends it and
// goes on ('COMMIT; INSERT ...') is split at the end (sqlscan.SplitAfterEnd): what runs
// after the COMMIT, END or ROLLBACK is outside the transaction and may write, which the
// standby refuses with 25006 where one PostgreSQL runs it. The head (the statements through
// the end) goes to the standby as a Query of its own; its ReadyForQuery is kept from the
// client when it reports the transaction ended without an error (the client's Query
// would have gone on), and the rest is then dispatched as the client's next Query,
// routed anew (the primary, for a write). The client sees one answer with one
// ReadyForQuery, the rest's. An error in the head, or a lost link, ends the Query there
// as PostgreSQL ends it: the rest is dropped and the head's ReadyForQuery goes out.
//
// The head's answer is awaited as a held request's (replica.go: s.rr, with split set,
// never holding): Pump notes an ErrorResponse in it and decides at its ReadyForQuery
// (splitHides); dispatch's afterReplicaSend waits for it. Not split: a Query of a
// listening client, one larger than maxInspect, or one whose rest is a single
// statement PostgreSQL runs otherwise alone (sqlscan.OwnTransaction). An extended-protocol
// request that ends the transaction and goes on is not split either: it runs on the
// standby.

// splitAtEnd splits the client's Query (the current message, n bytes) when it ends a
// transaction open on a standby and goes on (above). done: the Query was handled here.
func (s *Session) splitAtEnd(n int) (done, skipping bool, err error) {
	if n > maxInspect || s.forcePrimary || s.notes.Load() != nil || s.rr.Load() != nil {
		return false, false, nil
	}
	s.mu.Lock()
	linked := s.server != nil && s.onReplica
	s.mu.Unlock()
	if !linked {
		return false, false, nil
	}
	s.awaitReplicaUnlink('Q') // an answer still coming: its end decides
	s.mu.Lock()
	c := s.server
	inTx := c != nil && s.onReplica && (s.TxStatus == 'T' || s.TxStatus == 'E') &&
		s.Pending == 0 && !s.Unsynced && s.fo == 0
	s.mu.Unlock()
	if !inTx {
		return false, false, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, false, nil // dispatch reports it
	}
	text, _, err := wire.CString(wire.Body(m))
	if err != nil || len(text) == 0 {
		return false, false, nil
	}
	head, rest, ok := sqlscan.SplitAfterEnd(unsafe.String(&text[0], len(text))) // a view: copied below
	if !ok {
		return false, false, nil
	}
	q1, q2 := wire.Query(nil, head), wire.Query(nil, rest)
	if err := s.rd.Skip(n); err != nil {
		return true, false, err
	}
	rr := &replicaReq{c: c, done: make(chan bool, 1), split: true}
	s.rr.Store(rr)
	skipping, err = s.dispatchOwn(q1)
	s.rr.Store(nil)
	if err != nil || !rr.splitHidden.Load() {
		return true, skipping, err // the head's ReadyForQuery went to the client
	}
	s.awaitSplitUnlink(c)
	skipping, err = s.dispatchOwn(q2)
	return true, skipping, err
}

// splitHides reports whether the ReadyForQuery with status that answers e on c ends the
// head of a split Query whose rest is to follow: the transaction ended without an error.
// Pump's, with s.mu held.
func (s *Session) splitHides(c *pool.Conn, e expect, status byte) bool {
	rr := s.rr.Load()
	if rr == nil || !rr.split || rr.c != c || e.Kind != 'Q' {
		return false
	}
	hide := status == 'I' && !rr.sawErr
	rr.splitHidden.Store(hide)
	return hide
}

// maxSplitUnlinkWait bounds awaitSplitUnlink's wait.
const maxSplitUnlinkWait = time.Second

// awaitSplitUnlink waits, bounded, for the standby link whose transaction a split Query's
// head ended to end (after a read-back of settings the head changed, if any), so that
// the rest is routed anew. A pinned client keeps it: the rest follows it there.
func (s *Session) awaitSplitUnlink(c *pool.Conn) {
	deadline := time.Now().Add(maxSplitUnlinkWait)
	for {
		s.mu.Lock()
		kept := s.server == c && s.pinned == 0
		s.mu.Unlock()
		if !kept || s.closed.Load() || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
