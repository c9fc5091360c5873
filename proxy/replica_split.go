package proxy

import (
	"time"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
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
// statement PostgreSQL runs otherwise alone (sqlscan.OwnTransaction).
//
// An extended-protocol request (a pipeline up to Sync, a pgx batch) that does the same is
// split likewise once it has arrived whole (splitBatchAtEnd): the head is its messages
// through the Execute of the COMMIT, END or ROLLBACK (not AND CHAIN), followed by a Sync
// of pgmux's whose ReadyForQuery is kept from the client in the same way; the rest, up to
// the client's Sync, is routed anew. PostgreSQL runs what follows the end in a
// transaction of its own up to the Sync, which the rest gets on its server too. Not
// split: a request that executes a statement pgmux does not know, one not all here
// (Flush-driven), or one that executes nothing after the end.

// splitAtEnd splits the client's Query (the current message, n bytes) when it ends the
// transaction open on standby c and goes on (above). done: the Query was handled here.
func (s *Session) splitAtEnd(c *pool.Conn, n int) (done, skipping bool, err error) {
	if n > maxInspect {
		return false, false, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, false, nil // dispatch reports it
	}
	q1, q2, ok := queryParts(m)
	if !ok {
		return false, false, nil
	}
	if err := s.rd.Skip(n); err != nil {
		return true, false, err
	}
	return s.splitOwn(c, q1, q2)
}

// splitOwn runs head, the client's messages through its transaction's end, on standby c
// as a held request of its own, then, when its ReadyForQuery was kept from the client
// (the transaction ended without an error), rest, routed anew.
func (s *Session) splitOwn(c *pool.Conn, head, rest []byte) (done, skipping bool, err error) {
	rr := &replicaReq{c: c, done: make(chan bool, 1), split: true}
	s.rr.Store(rr)
	skipping, err = s.dispatchOwn(head)
	s.rr.Store(nil)
	if err != nil || !rr.splitHidden.Load() {
		return true, skipping, err // the head's ReadyForQuery went to the client
	}
	s.awaitSplitUnlink(c)
	skipping, err = s.dispatchOwn(rest)
	return true, skipping, err
}

// splitHides reports whether the ReadyForQuery with status that answers e on c ends the
// head of a split Query whose rest is to follow: the transaction ended without an error.
// Pump's, with s.mu held.
func (s *Session) splitHides(c *pool.Conn, e expect, status byte) bool {
	rr := s.rr.Load()
	if rr == nil || !rr.split || rr.c != c || e.Kind != 'Q' && e.Kind != 'S' {
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

// batchCut is where the client's buffered extended-protocol request, from the current
// message on, is split by splitBatchAtEnd: after the Execute that ends the transaction
// (cut), up to its Sync (end). ok is false when it is not to be split: no such Execute,
// nothing executed after it, a statement pgmux does not know, or not all of it here.
func (s *Session) batchCut() (cut, end int, ok bool) {
	buf := s.rd.Window()
	parsed := map[string]string{}
	portals := map[string]string{}
	for off := 0; ; {
		typ, body, next, whole := frameAt(buf, off)
		if !whole {
			return 0, 0, false
		}
		off = next
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok {
				return 0, 0, false
			}
			parsed[string(name)] = string(q)
		case 'B':
			portal, name, _, ok := link.BindFields(body)
			if !ok {
				return 0, 0, false
			}
			q, ok := parsed[string(name)]
			if !ok {
				if q, ok = s.stmtText(name); !ok {
					return 0, 0, false
				}
			}
			portals[string(portal)] = q
		case 'E':
			if cut > 0 {
				ok = true // executed after the end
				continue
			}
			portal, _, err := wire.CString(body)
			q, known := portals[string(portal)]
			if err != nil || !known {
				return 0, 0, false
			}
			if endsTx(q) && !sqlscan.Chained(q) {
				cut = off
			}
		case 'D', 'C', 'H':
		case 'S':
			return cut, off, ok
		default:
			return 0, 0, false
		}
	}
}

// splitBatchAtEnd splits the client's extended-protocol request (from the current
// message, n bytes, through its Sync) that ends the transaction open on standby c and
// executes more: the messages through the ending Execute, with a Sync of pgmux's, run
// on c, the rest is routed anew. The client sees one ReadyForQuery (splitOwn).
func (s *Session) splitBatchAtEnd(c *pool.Conn, n int) (done, skipping bool, err error) {
	cut, end, ok := s.batchCut()
	if !ok {
		return false, false, nil
	}
	buf := s.rd.Window()
	head := append(append(make([]byte, 0, cut+5), buf[:cut]...), 'S', 0, 0, 0, 4)
	rest := append([]byte(nil), buf[cut:end]...)
	if err := s.rd.Skip(n); err != nil {
		return true, false, err
	}
	for left := end - (wire.HeaderLen + n); left > 0; {
		_, m, err := s.rd.Next()
		if err == nil {
			err = s.rd.Skip(m)
		}
		if err != nil {
			return true, false, err
		}
		left -= wire.HeaderLen + m
	}
	return s.splitOwn(c, head, rest)
}

// queryParts splits the text of a Query message body at the transaction's end
// (sqlscan.SplitAfterEnd) into two Query messages.
func queryParts(m []byte) (head, rest []byte, ok bool) {
	text, _, err := wire.CString(wire.Body(m))
	if err != nil || len(text) == 0 {
		return nil, nil, false
	}
	h, r, ok := sqlscan.SplitAfterEnd(unsafe.String(&text[0], len(text))) // a view: copied below
	if !ok {
		return nil, nil, false
	}
	return wire.Query(nil, h), wire.Query(nil, r), true
}
