package proxy

import "sync/atomic"

// expect is one request on a linked server whose answer the relay must recognise: a
// client message, or one pgmux slipped in front of it. The server answers requests in
// order, so a FIFO of them tells, for every server message, which request it belongs to
// and whether the client may see it.
//
// An expect is a value owned by the respQueue that holds it (guarded by Session.mu); the
// statements it points to (def, reg) follow stmtDef's rules.
type expect struct {
	kind  byte   // the request's message type: P, B, D, E, C, S, Q or F
	hide  bool   // pgmux's own request: its answers are swallowed
	noop  bool   // for P: the empty statement that answers a Parse found in the server's cache
	stmt  string // for P: the server statement it creates; for hidden C: the one it closes
	stale bool   // for hidden C: it closes a stale copy before preparing the statement anew
	// check marks pgmux's session-state query: its one row tells whether a pinned
	// client can go back to transaction pooling.
	check bool
	seq   uint32 // for a check: Session.pinSeq when it was sent
	// For a client's Bind or Describe of a named statement: the statement, and where the
	// message starts in its link's request log (retry.go).
	off int32
	def *stmtDef
	// reg: for the client's Parse (or SQL PREPARE) of a statement, the statement, marked
	// failed when the server reports an error for it or skips it.
	reg *stmtDef
	// fix rewrites the server's error for a renamed message (errfix.go).
	fix *errFix
	// showErr: for pgmux's hidden PREPARE of a SQL statement before the client's EXECUTE,
	// its error goes to the client in place of the EXECUTE's (sqlprep.go).
	showErr bool
	// paramsSent: for a retried Describe of a statement, the client already has its
	// ParameterDescription (PostgreSQL sends it before checking the result type).
	paramsSent bool
	// anon: for a client's Bind or Describe of def, the client named the unnamed
	// statement (served from the statement cache): errors name "" as PostgreSQL's do.
	anon bool
	// fake: a client's Parse pgmux answers itself (unnamed.go); its ParseComplete goes
	// to the client as soon as every request before it is answered.
	fake bool
	// fresh: a Bind or Describe of the client's unnamed statement served from the cache
	// that the client parsed in the same request (prepared.go parsedHere).
	fresh bool
	// prep: for a request that prepares stmt on the server (a Parse, or a PREPARE sent
	// as a Query or executed), the preparation's number in the server's statement cache
	// (stmtcache.go): its answer confirms the statement there, its failure forgets it.
	prep uint32
	// clear: for the client's Query with DISCARD ALL or DEALLOCATE ALL, its number among
	// those the session sent (stmtclear.go): when the server completes that command, the
	// client's statements registered before it are gone.
	clear uint32
	// hold: pgmux's preparation of a client statement before a Query (sqlmulti.go): its
	// error is held, and replaces the 26000 the client's EXECUTE then gets.
	hold bool
	// settles: a hidden Sync after the client's request; the link may end at its
	// ReadyForQuery.
	settles bool
	// drops: for a client request with DEALLOCATE of names, one per such statement in
	// the order the server runs them (stmtclear.go).
	drops []clearDrop
	// setting marks pgmux's hidden settings queries (settings_link.go); for setSync and
	// setSyncReset, stmt names the setting and val is the value setSync gives it.
	setting uint8
	val     string
	// hideCC: for the client's Query with pgmux's DO blocks in it (settings_inplace.go),
	// bit i marks its i-th CommandComplete as theirs; ccSeen counts those received.
	hideCC uint64
	ccSeen uint8
}

// respQueue is a growable ring of expects. It is guarded by Session.mu: the session
// goroutine pushes before writing a request, the server's reader goroutine pops as the
// answers arrive.
type respQueue struct {
	buf        []expect
	head, size int
	// fakes counts the fake entries queued, so the server's reader can tell without
	// s.mu that there is none (the usual case).
	fakes atomic.Int32
	// clears counts the clearing Queries queued (expect.clear), so the session goroutine
	// can tell without s.mu that none is unanswered; wake, made with the first, gets a
	// token whenever one is retired (stmtclear.go).
	clears atomic.Int32
	wake   chan struct{}
}

// markClear marks the newest expect, the client's Query, as clearing the client's
// statements: number n of those the session sent.
func (q *respQueue) markClear(n uint32) {
	e := q.tail()
	if e == nil || e.clear != 0 {
		return
	}
	q.wakeChan()
	e.clear = n
	q.clears.Add(1)
}

// wakeChan returns wake, made on first use. Under Session.mu.
func (q *respQueue) wakeChan() chan struct{} {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	return q.wake
}

// woken tells a session goroutine waiting for a clearing Query's answer to look again.
func (q *respQueue) woken() {
	if q.wake != nil {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *respQueue) len() int { return q.size }

func (q *respQueue) push(e expect) {
	if q.size == len(q.buf) {
		n := 2 * len(q.buf)
		if n == 0 {
			n = 8 // a Query needs one, an extended-protocol request about five
		}
		nb := make([]expect, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = e
	q.size++
	if e.fake {
		q.fakes.Add(1)
	}
}

// peek returns the oldest expect; ok is false when the queue is empty.
func (q *respQueue) peek() (expect, bool) {
	if q.size == 0 {
		return expect{}, false
	}
	return q.buf[q.head], true
}

// hideHead makes the oldest expect pgmux's own: its answers are swallowed.
func (q *respQueue) hideHead() {
	if q.size > 0 {
		q.buf[q.head].hide = true
	}
}

func (q *respQueue) pop() (expect, bool) {
	if q.size == 0 {
		return expect{}, false
	}
	e := q.buf[q.head]
	q.drop()
	return e, true
}

// drop removes the oldest expect without copying it out; the queue is not empty.
func (q *respQueue) drop() {
	e := &q.buf[q.head]
	if e.fake {
		q.fakes.Add(-1)
	}
	if e.clear != 0 {
		q.clears.Add(-1)
		q.woken()
	}
	*e = expect{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
}

// onlySettings reports whether the queue holds requests and all are pgmux's hidden
// settings queries.
func (q *respQueue) onlySettings() bool {
	for i := 0; i < q.size; i++ {
		if e := &q.buf[(q.head+i)%len(q.buf)]; !e.hide || e.setting == 0 {
			return false
		}
	}
	return q.size > 0
}

func (q *respQueue) reset() {
	for q.size > 0 {
		q.pop()
	}
	q.head = 0
}

// front returns the oldest expect, to be changed in place; nil when empty. Reader only.
func (q *respQueue) front() *expect {
	if q.size == 0 {
		return nil
	}
	return &q.buf[q.head]
}

// tail returns the newest expect, which the session goroutine pushed; nil when empty.
func (q *respQueue) tail() *expect {
	if q.size == 0 {
		return nil
	}
	return &q.buf[(q.head+q.size-1)%len(q.buf)]
}

// pushBeforeTail queues es in front of the newest expect: requests pgmux writes before
// the client message whose expect was already queued (and not yet written).
func (q *respQueue) pushBeforeTail(es ...expect) {
	last, ok := expect{}, q.size > 0
	if ok {
		last = *q.tail()
		q.size--
	}
	for _, e := range es {
		q.push(e)
	}
	if ok {
		q.push(last)
	}
}

// each calls f for every queued expect, oldest first.
func (q *respQueue) each(f func(expect)) {
	for i := 0; i < q.size; i++ {
		f(q.buf[(q.head+i)%len(q.buf)])
	}
}

// hiddenAhead reports whether the request the next message belongs to is one of pgmux's
// hidden queries: for ReadyForQuery the first Query, Sync or FunctionCall queued, for
// anything else the head when it is a hidden Query.
func (q *respQueue) hiddenAhead(typ byte) bool {
	for i := 0; i < q.size; i++ {
		e := &q.buf[(q.head+i)%len(q.buf)]
		if typ != 'Z' {
			return e.kind == 'Q' && e.hide
		}
		switch e.kind {
		case 'S', 'Q', 'F':
			return e.hide
		}
	}
	return false
}
