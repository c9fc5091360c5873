package proxy

import (
	"bytes"
	"sync/atomic"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/link"
)

// unnamedStmt is the client's unnamed statement. A client may Parse it, Sync, and Bind
// or Describe it in its next request (pgx's QueryExecModeDescribeExec does), which in
// transaction mode may run on another server, whose unnamed statement is then some other
// client's or none. So pgmux keeps its text and trusts the server's copy only within the
// request (up to the Sync or Query) that parsed it; a later use gets a hidden Parse in
// front. Within one request the unnamed statement and unnamed portals pass untouched.
//
// The client has none, as in PostgreSQL, before its first Parse of it, after its Close,
// after a Parse of it that failed (exec_parse_message drops the old one first) and
// after a simple Query (exec_simple_query drops it, whatever the Query): then body is
// empty, its buffer kept for the next Parse, and a later use gets a hidden Close of the
// server's unnamed statement in front, so that the server answers PostgreSQL's 26000
// itself.
//
// What the client's messages do to it is applied when they are sent, and corrected when
// the server's answers say otherwise: a Parse that failed leaves none, and a Parse, Close
// or Query that the server skipped behind an earlier error changes nothing, as it never
// ran (the events below).
//
// Owners: the session goroutine, but for failed and skipped, which the server's reader
// stores under Session.mu and the session goroutine loads and clears (atomically,
// without it), and waiting, guarded by Session.mu.
type unnamedStmt struct {
	body []byte // the Parse message after the name: query, parameter types; empty when none
	// failed is the number (gen) of an event the server refused, a Parse of it, or the
	// last of those it then skipped; skipped, the first and last numbers (first<<16 |
	// last) of a run of events it skipped behind another message's error. Set by the
	// server's reader (onError, skipToSync, retireReady); applied by settle, and cleared
	// at the next event that cannot be skipped, so that gen, which wraps, never meets a
	// stale one.
	failed, skipped atomic.Uint32
	// def, when set, is the statement cache's statement the client's unnamed one is
	// served from (cache_unnamed_statements): Bind and Describe of "" go to it.
	def *stmtDef
	x   *unnamedRare // made on first need: few clients ever need it
	// syncAt is the client reader's count (wire.Reader.Seq, its low bits) at the
	// client's last Sync, or at a simple Query that could not be skipped: the message
	// right after it starts a request nothing before can fail in.
	syncAt uint32
	// gen numbers the client's events: its Parses and Closes of the unnamed statement and
	// its simple Queries (never 0 once one was sent); their expects carry it (Seq).
	gen  uint16
	live bool // parsed on the linked server in the current request
	// unflushed: a ParseComplete pgmux wrote itself is not flushed yet (unnamed.go)
	unflushed bool
	// pend: an event was sent on the link whose answer may not have come (settleUnnamed).
	pend bool
	// stampQ: the Query being dispatched may be skipped; account marks its expect.
	stampQ bool
	// waiting: the session goroutine waits for an event's answer (settleUnnamed); the
	// server's reader wakes it at each ReadyForQuery. Guarded by Session.mu.
	waiting bool
}

// unnamedRare is what few clients need of the unnamed statement: what executing it does
// to statement names, and the states the server may still skip back to.
type unnamedRare struct {
	clear clearOp // what executing it does to the client's statement names (stmtclear_ext.go)
	// saved holds, for each event that may be skipped (one with an earlier message of its
	// request in front), the client's unnamed statement before it, oldest first; a run of
	// events with the same one before each shares an entry. Emptied at the next event
	// that cannot be skipped.
	saved []unnamedSaved
}

// unnamedSaved is the client's unnamed statement before events from..to.
type unnamedSaved struct {
	from, to uint16
	body     []byte
	def      *stmtDef
	clear    clearOp
}

// maxSaved bounds unnamedRare.saved: at a Parse or Close of the unnamed statement or a
// simple Query past it, pgmux waits for the server's answers so far and drops what they
// make irrelevant (roomUnnamed). An event whose wait fails is not saved for, and a skip
// back to it leaves the client no unnamed statement (an error at its next use, never
// another text).
const maxSaved = 64

// rare returns x, made on first need.
func (u *unnamedStmt) rare() *unnamedRare {
	if u.x == nil {
		u.x = new(unnamedRare)
	}
	return u.x
}

// op is what executing the statement does to the client's statement names.
func (u *unnamedStmt) op() clearOp {
	if u.x == nil {
		return clearOp{}
	}
	return u.x.clear
}

// setOp sets op, making x only for one that does something.
func (u *unnamedStmt) setOp(op clearOp) {
	if u.x != nil || op != (clearOp{}) {
		u.rare().clear = op
	}
}

// beginUnnamed numbers one of the client's events, a Parse or Close of the unnamed
// statement or a simple Query, before it changes the statement. When an earlier message
// of its request may fail, the server may skip it: the statement before it is saved.
// Otherwise nothing before it matters any more. It reports whether the event cannot be
// skipped. A Parse that starts its request (the usual one) pays a comparison, a nil test
// and two loads.
func (s *Session) beginUnnamed() (first bool) {
	u := &s.unnamed
	next := nextGen(u.gen)
	first = uint32(s.rd.Seq()) == u.syncAt+1
	if first {
		u.forgetSaved()
	} else {
		u.save(next)
	}
	u.gen = next
	return first
}

// nextGen is the event number after g; numbers wrap, and skip 0 (none).
func nextGen(g uint16) uint16 {
	if g++; g == 0 {
		g = 1
	}
	return g
}

// forgetSaved drops what an event that cannot be skipped makes irrelevant: the saved
// states and what the server said of earlier events.
func (u *unnamedStmt) forgetSaved() {
	if g := u.failed.Load(); g != 0 {
		u.failed.CompareAndSwap(g, 0)
	}
	if g := u.skipped.Load(); g != 0 {
		u.skipped.CompareAndSwap(g, 0)
	}
	if u.x != nil {
		u.x.saved = u.x.saved[:0]
	}
}

// save keeps the statement as it is before event seq.
func (u *unnamedStmt) save(seq uint16) {
	x := u.rare()
	n := len(x.saved)
	if n > 0 {
		last := &x.saved[n-1]
		// (A run does not wrap: restore compares numbers.)
		if seq == last.to+1 && bytes.Equal(last.body, u.body) && last.def == u.def && last.clear == x.clear {
			last.to = seq // the same statement before this one: a driver's batch
			return
		}
	}
	if n == maxSaved {
		return
	}
	if n < cap(x.saved) {
		x.saved = x.saved[:n+1]
	} else {
		x.saved = append(x.saved, unnamedSaved{})
	}
	e := &x.saved[n]
	e.from, e.to, e.def, e.clear = seq, seq, u.def, x.clear
	e.body = append(e.body[:0], u.body...)
}

// restore makes the statement what it was before event k, which the server skipped with
// every later one up to the latest; none when that was not saved. Every event is
// answered then: nothing saved is needed any more.
func (u *unnamedStmt) restore(k uint16) {
	u.drop()
	if u.x == nil {
		return
	}
	for _, e := range u.x.saved {
		if e.from <= k && k <= e.to {
			u.body = append(u.body, e.body...)
			u.def, u.x.clear = e.def, e.clear
			break
		}
	}
	u.x.saved = u.x.saved[:0]
}

// unnamedEvent reports whether e is one of the client's events: of its expects only
// those carry a number (Seq) and are not pgmux's own.
func unnamedEvent(e *expect) bool { return e.Seq != 0 && !e.Hide }

// eventRun is the first and last numbers of the client's events among requests the
// server skipped (skipToSync, retireReady); 0 when none.
type eventRun struct{ first, last uint16 }

func (r *eventRun) add(e *expect) {
	if unnamedEvent(e) {
		if r.first == 0 {
			r.first = uint16(e.Seq)
		}
		r.last = uint16(e.Seq)
	}
}

// reportSkipped records that the server skipped events first..last; a run right after
// the one recorded joins it. The server's reader calls it, and the session goroutine
// for a Parse it answers as skipped itself (ParseIgnored).
func (u *unnamedStmt) reportSkipped(first, last uint16) {
	for {
		old := u.skipped.Load()
		from := first
		if old != 0 && first == nextGen(uint16(old)) {
			from = uint16(old >> 16)
		}
		if u.skipped.CompareAndSwap(old, uint32(from)<<16|uint32(last)) {
			return
		}
	}
}

// settle applies what the server said of the events once their answers are in: after a
// skipped run ending with the latest event, the statement before the run (none if the
// event before it failed); after a failed latest event, none. What does not concern the
// latest event stays, for a later run that joins it, until the next event that cannot
// be skipped.
func (u *unnamedStmt) settle() {
	if sk := u.skipped.Load(); sk != 0 && uint16(sk) == u.gen {
		k := uint16(sk >> 16)
		u.restore(k)
		u.skipped.CompareAndSwap(sk, 0)
		if f := u.failed.Load(); f != 0 && nextGen(uint16(f)) == k {
			u.drop() // the event before the run failed
			u.failed.CompareAndSwap(f, 0)
		}
		return
	}
	if f := u.failed.Load(); f != 0 && uint16(f) == u.gen {
		u.drop()
		u.failed.CompareAndSwap(f, 0)
	}
}

// unnamedDef returns the cache's statement the client's unnamed one is served from (nil
// when it is none or a body of its own), for a Bind or Describe of it on c. Within the
// request that parsed it, the server's copy is the client's; after it, what the server
// said of the client's events is applied first (settleUnnamed). A bool, and past it a
// bool and two loads.
func (s *Session) unnamedDef(c *pool.Conn) *stmtDef {
	u := &s.unnamed
	if !u.live && (u.pend || u.failed.Load()|u.skipped.Load() != 0) {
		s.settleUnnamed(c)
	}
	return u.def
}

// settleUnnamed applies what the server said of the client's events. When an event of a
// request already ended (a Sync or Query sent after it) is still unanswered, a Bind or
// Describe pipelined behind it waits for its answer, as PostgreSQL runs it only after:
// whether that Parse failed, or was skipped, decides the statement it meets. The server
// has the earlier request whole and answers it without waiting for the client; the wait
// is bounded (awaitUntil). Events of the current request are not waited for: the server
// flushes their answers only at its end.
func (s *Session) settleUnnamed(c *pool.Conn) {
	u := &s.unnamed
	if u.pend {
		s.mu.Lock()
		due, left := s.unnamedOut()
		if due {
			u.waiting = true
			s.q.wakeChan()
		}
		s.mu.Unlock()
		if due {
			if c.Wr.Flush() == nil {
				s.awaitUntil(func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					due, _ := s.unnamedOut()
					return !due
				})
			}
			s.mu.Lock()
			u.waiting = false
			_, left = s.unnamedOut()
			s.mu.Unlock()
		}
		u.pend = left
	}
	u.settle()
}

// unnamedOut reports whether an event of the client's is still queued (left) and whether
// one is queued in front of a request's end (due). s.mu is held.
func (s *Session) unnamedOut() (due, left bool) {
	s.q.each(func(e expect) {
		if unnamedEvent(&e) {
			left = true
		}
		if left && (e.Kind == 'S' || e.Kind == 'Q' || e.Kind == 'F') && !e.Skipped {
			due = true
		}
	})
	return due, left
}

// unnamedDue reports whether a Bind or Describe of the unnamed statement now might wait
// (settleUnnamed): the client loop leaves such a message to the session goroutine.
func (s *Session) unnamedDue() bool {
	u := &s.unnamed
	if u.live || !u.pend {
		return false
	}
	s.mu.Lock()
	due, left := s.unnamedOut()
	s.mu.Unlock()
	u.pend = left
	return due
}

// linkedAnew: nothing sent on an earlier link is still unanswered.
func (u *unnamedStmt) linkedAnew() { u.pend = false }

// use makes the client's unnamed statement the cache's def, parsed by the client in
// the current request (live).
func (u *unnamedStmt) use(def *stmtDef) {
	u.def, u.live = def, true
	u.setOp(clearOp{})
}

// seq is the number of the client's latest event, for its expect (Seq).
func (u *unnamedStmt) seq() uint32 { return uint32(u.gen) }

// parsedHere reports whether def is the client's unnamed statement and the client parsed
// it in the current request: a fresh Parse would infer its parameter types anew, so a
// retry may prepare it again whatever they were (retry.go).
func (s *Session) parsedHere(def *stmtDef) bool {
	return def == s.unnamed.def && s.unnamed.live
}

// record keeps the body of the client's Parse of the unnamed statement, reusing the
// buffer so drivers that parse before every execution allocate nothing.
func (u *unnamedStmt) record(body []byte) {
	if cap(u.body) > 4<<10 && len(body) < cap(u.body)/4 {
		u.body = nil // do not keep a big buffer for small statements
	}
	u.body = append(u.body[:0], body...)
	u.live = true
	u.def = nil
	u.setOp(clearOp{})
}

// forget drops it (the client closed it).
func (u *unnamedStmt) forget() {
	u.body, u.live, u.def = nil, false, nil
	u.setOp(clearOp{})
}

// drop drops it and keeps its buffer for the next Parse: a failed Parse of it, or a
// simple Query.
func (u *unnamedStmt) drop() {
	u.body, u.live, u.def = u.body[:0], false, nil
	u.setOp(clearOp{})
}

// keep is the body shed keeps while the client parks (keptWork): nil when the client
// has no unnamed statement. Nothing is unanswered then.
func (u *unnamedStmt) keep() []byte {
	u.settle()
	if len(u.body) == 0 {
		return nil
	}
	return u.body
}

// endRequest is called for every Sync (seq: the reader's count at it) and FunctionCall
// (seq 0: its own skipping is not told apart): the link may end at its ReadyForQuery.
// A simple Query drops the statement (queryDrops).
func (u *unnamedStmt) endRequest(seq uint64) {
	u.live = false
	if seq != 0 {
		u.syncedAt(seq)
	}
}

// syncedAt records that the client's message seq (the reader's count) ended a request,
// or that the reader stands between requests at seq.
func (u *unnamedStmt) syncedAt(seq uint64) { u.syncAt = uint32(seq) }

// unsureAt records that after the client's message seq it is not known whether a
// request is open: every event then counts as one the server may skip, until a Sync.
func (u *unnamedStmt) unsureAt(seq uint64) { u.syncAt = uint32(seq) + 1<<31 }

// queryDrops applies a simple Query to the client's unnamed statement:
// exec_simple_query drops it, whatever the Query. A Query the server may skip is marked
// for account, so that a skip is told (stampQ); one that cannot be skipped leaves the
// server out of skipping, like a Sync, for the message after it.
func (s *Session) queryDrops() {
	u := &s.unnamed
	if u.full() {
		if c := s.linkedServer(); c != nil {
			s.roomUnnamed(c)
		}
	}
	first := s.beginUnnamed()
	u.drop()
	u.stampQ = !first
	if first {
		u.syncedAt(s.rd.Seq())
	} else {
		u.pend = true
	}
}

// closeUnnamed sends the client's Close m of its unnamed statement: for the rest of the
// request the server has none, as the client.
func (s *Session) closeUnnamed(c *pool.Conn, m []byte) error {
	s.roomUnnamed(c)
	s.beginUnnamed()
	u := &s.unnamed
	u.forget()
	u.live, u.pend = true, true
	return s.send(c, m, expect{Kind: 'C', Seq: u.seq()})
}

// sendUnnamed forwards a Bind or Describe of the unnamed statement, parsing the client's
// statement again first when the server's copy may not be the client's.
func (s *Session) sendUnnamed(c *pool.Conn, m []byte, typ byte) error {
	u := &s.unnamed
	if u.live {
		return s.send(c, m, expect{Kind: typ})
	}
	if len(u.body) == 0 {
		// None: the server's unnamed statement, some other client's or pgmux's, goes,
		// and the server refuses m as PostgreSQL would (26000). The server's then is the
		// client's, none, for the rest of the request.
		b := link.AppendClose(s.scratch[:0], 'S', "")
		b = append(b, m...)
		u.live = true
		err := s.send(c, b, expect{Kind: 'C', Hide: true}, expect{Kind: typ})
		s.keepScratch(b)
		return err
	}
	b, body := s.scratch[:0], u.body
	var es []expect
	if u.op().exec != nil {
		var target *stmtDef
		body, target = s.unnamedExecBody(u)
		if target != nil {
			b, es, _ = s.ensure(c, target, b)
		}
	}
	b = link.AppendParseAs(b, "", body)
	b = append(b, m...)
	u.live = true
	err := s.send(c, b, append(es, expect{Kind: 'P', Hide: true}, expect{Kind: typ})...)
	s.keepScratch(b)
	return err
}
