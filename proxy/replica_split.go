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
// split likewise (splitBatchAtEnd): the head is its messages through the Execute of the
// COMMIT, END or ROLLBACK (not AND CHAIN), followed by a Sync of pgmux's whose
// ReadyForQuery is kept from the client in the same way; the rest, up to the client's
// Sync, is routed anew. PostgreSQL runs what follows the end in a transaction of its own
// up to the Sync, which the rest gets on its server too. When the client's Sync is here,
// a request that executes nothing after the end is not split.
//
// A request whose Sync is not here yet (Flush-driven, or not all arrived) is split at the
// end as soon as the head is here, whatever follows: the head's ReadyForQuery is then
// never the client's (splitHides: open). Clean, the head's link ends and the client's
// messages after it are routed as a request of their own; a Flush or the Sync right
// behind the head, with nothing left to run, pgmux answers itself (endSplit). After an
// error in the head the client's messages up to its Sync are dropped, as PostgreSQL drops
// them, and its Sync gets the standby's answer (dropToSync). When the end is parsed or
// bound and its Execute has not come, pgmux reads more of the request first (the
// client sends it before it can expect an answer); when the end arrives after the
// request began on the standby, the split is made at its Parse or Bind
// (splitInRequest): what came before it had gone to the standby already and is simply
// part of the head. Not split: a request that executes a statement pgmux does not know,
// or a portal bound before a Flush or in an earlier request.

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
// A nil rest: the client's Sync has not come (open; above).
func (s *Session) splitOwn(c *pool.Conn, head, rest []byte) (done, skipping bool, err error) {
	open := rest == nil
	rr := &replicaReq{c: c, done: make(chan bool, 1), split: true, open: open}
	s.rr.Store(rr)
	skipping, err = s.dispatchOwn(head)
	s.rr.Store(nil)
	switch {
	case err != nil:
		return true, skipping, err
	case !rr.splitEnded.Load() && open:
		skipping, err = s.dropToSync(c)
		return true, skipping, err
	case !rr.splitEnded.Load():
		return true, skipping, nil // the head's ReadyForQuery went to the client
	}
	s.awaitSplitUnlink(c)
	if open {
		return true, false, s.endSplit()
	}
	skipping, err = s.dispatchOwn(rest)
	return true, skipping, err
}

// splitHides reports whether the ReadyForQuery with status that answers e on c ends the
// head of a split request, and is kept from the client: when the head ended the
// transaction without an error (splitEnded) and its rest is to follow, and always when
// the client's Sync is still to come. Pump's, with s.mu held.
func (s *Session) splitHides(c *pool.Conn, e expect, status byte) bool {
	rr := s.rr.Load()
	if rr == nil || !rr.split || rr.c != c || e.Kind != 'Q' && e.Kind != 'S' {
		return false
	}
	ended := status == 'I' && !rr.sawErr
	rr.splitEnded.Store(ended)
	return ended || rr.open
}

// dropToSync drops the client's messages up to its Sync after an error in the head of
// an open split, as PostgreSQL skips them; the Sync goes to standby c, whose transaction
// the error left open, for its answer, or pgmux answers it when c's link has ended.
func (s *Session) dropToSync(c *pool.Conn) (skipping bool, err error) {
	for {
		typ, n, err := s.rd.Next()
		if err != nil {
			return false, err
		}
		switch {
		case typ == 'X' || !frontendMessage(typ):
			return true, nil // the relay ends the session at it
		case typ != 'S':
			if err := s.rd.Skip(n); err != nil {
				return false, err
			}
		case s.linkedServer() == c:
			return s.dispatch(typ, n)
		default:
			return s.skipUntilSync(typ, n)
		}
	}
}

// endSplit answers, after the clean head of an open split, the Flushes and the Sync
// buffered right behind it: the head's answers went out already, and nothing is left to
// run. Anything else is the rest of the request, which the relay routes anew.
func (s *Session) endSplit() error {
	for {
		typ, n, whole := s.rd.Whole()
		if !whole || typ != 'H' && typ != 'S' {
			return nil
		}
		if _, _, err := s.rd.Next(); err != nil {
			return err
		}
		if err := s.rd.Skip(n); err != nil {
			return err
		}
		if typ == 'S' {
			s.unnamed.endRequest(s.rd.Seq())
			return s.writeClient(wire.ReadyForQuery(nil, s.idleStatus()))
		}
	}
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
// (cut), up to its Sync (end; 0 when the Sync is not here: split whatever follows). ok
// is false when it is not to be split: no such Execute here, nothing executed after it
// before the Sync, or a statement pgmux does not know; more, when the end is parsed or
// bound and its Execute may still come.
func (s *Session) batchCut() (cut, end int, more, ok bool) {
	buf := s.rd.Window()
	parsed := map[string]string{}
	portals := map[string]string{}
	ending := false // the end is parsed or bound, not executed yet
	for off := 0; ; {
		typ, body, next, whole := frameAt(buf, off)
		if !whole {
			if cut > 0 {
				return cut, 0, false, true
			}
			return 0, 0, ending, false
		}
		off = next
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok {
				return 0, 0, false, false
			}
			parsed[string(name)] = string(q)
			ending = ending || cut == 0 && endsOnly(string(q))
		case 'B':
			portal, name, _, ok := link.BindFields(body)
			if !ok {
				return 0, 0, false, false
			}
			q, ok := parsed[string(name)]
			if !ok {
				if q, ok = s.stmtText(name); !ok {
					return 0, 0, false, false
				}
			}
			portals[string(portal)] = q
			ending = ending || cut == 0 && endsOnly(q)
		case 'E':
			if cut > 0 {
				ok = true // executed after the end
				continue
			}
			portal, _, err := wire.CString(body)
			q, known := portals[string(portal)]
			if err != nil || !known {
				return 0, 0, false, false
			}
			if endsOnly(q) {
				cut = off
			}
		case 'H':
			ending = false // the client reads what came before: no more may be sent first
		case 'D', 'C':
		case 'S':
			return cut, off, false, ok
		default:
			return 0, 0, false, false
		}
	}
}

// endsOnly reports whether an extended-protocol statement ends the transaction without
// beginning another (endsTx, not AND CHAIN).
func endsOnly(q string) bool { return endsTx(q) && !sqlscan.Chained(q) }

// splitBatchAtEnd splits the client's extended-protocol request (from the current
// message, n bytes) that ends the transaction open on standby c and executes more, or may
// (its Sync not here): the messages through the ending Execute, with a Sync of pgmux's,
// run on c, the rest is routed anew. The client sees one ReadyForQuery (splitOwn).
func (s *Session) splitBatchAtEnd(c *pool.Conn, n int) (done, skipping bool, err error) {
	cut, end, ok, err := s.awaitCut()
	if err != nil {
		return true, false, err
	}
	if !ok {
		return false, false, nil
	}
	buf := s.rd.Window()
	head := append(append(make([]byte, 0, cut+5), buf[:cut]...), 'S', 0, 0, 0, 4)
	var rest []byte
	if end > 0 {
		rest = append([]byte(nil), buf[cut:end]...)
	} else {
		end = cut
	}
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

// awaitCut is batchCut once enough of the request is here: while the end is parsed or
// bound and its Execute has not come, it reads more of the client's request, up to a
// buffer's worth. A client sends its request before it can expect any answer, so the
// wait is its own sending (and ends with its connection).
func (s *Session) awaitCut() (cut, end int, ok bool, err error) {
	for {
		cut, end, more, ok := s.batchCut()
		if !more || s.rd.Buffered() >= wire.BufSize-wire.HeaderLen {
			return cut, end, ok, nil
		}
		if err := s.rd.More(); err != nil {
			return 0, 0, false, err
		}
	}
}

// splitInRequest splits the client's request already running on a standby, in the
// transaction open there, at a Parse or Bind (the current message, n bytes) of a
// statement that ends it (above): the end came after the request began.
func (s *Session) splitInRequest(typ byte, n int) (done, skipping bool, err error) {
	if n > maxInspect {
		return false, false, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, false, nil // dispatch reports it
	}
	var q string
	if typ == 'P' {
		body := wire.Body(m)
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			return false, false, nil
		}
		text := f.Second(body)
		if len(text) == 0 {
			return false, false, nil
		}
		q = unsafe.String(&text[0], len(text)) // a view, read here only
	} else {
		body := wire.Body(m)
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			return false, false, nil
		}
		var ok bool
		if q, ok = s.stmtText(f.Second(body)); !ok {
			return false, false, nil
		}
	}
	if !endsOnly(q) {
		return false, false, nil
	}
	s.mu.Lock()
	c := s.server
	inTx := c != nil && s.onReplica && (s.TxStatus == 'T' || s.TxStatus == 'E') && s.fo == 0
	s.mu.Unlock()
	if !inTx {
		return false, false, nil
	}
	return s.splitBatchAtEnd(c, n)
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
