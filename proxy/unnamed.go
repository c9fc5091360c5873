package proxy

import (
	"hash/maphash"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/proxy/link"
)

// Unnamed statements from the statement cache (cache_unnamed_statements = 1).
//
// Most drivers send every query as a Parse of the unnamed statement, so PostgreSQL
// parses, analyses and plans it every time. With the setting on, pgmux serves such a
// Parse from the server's statement cache instead: the statement is prepared there under
// pgmux's name for its text and parameter types (the same name a client's named
// statement of that text gets), and the client's Bind and Describe of the unnamed
// statement go to that name. A Parse of a statement the server already has costs the
// server nothing: pgmux answers its ParseComplete itself, in order, once every earlier
// request has been answered (expect.Fake).
//
// Admission: a text is prepared under pgmux's name only on its second sighting on a
// server, remembered in a small direct-mapped sketch of 64-bit keys per server
// (link.Sketch); the first is forwarded as the plain unnamed Parse it was. How a Parse
// the server has is answered is link.AnswerParse's rule (answerParse). Texts with inlined literals, each seen
// once, so never enter the cache, never evict a hot statement, and cost one hash.
//
// Not cached, and forwarded as they are: statements the session-state scanner finds
// interesting (SET, DISCARD, LISTEN, advisory locks, temporary objects, several
// statements...), DROP, and any Parse in a failed transaction (PostgreSQL answers it
// with 25P02, so the client must see that error at the Parse).

// stmtKey is stmtDef.key for a statement's text, parameter type section and statement
// epoch (ddl.go), computed without allocating.
func stmtKey(query, types []byte, epoch uint64) uint64 {
	var h maphash.Hash
	h.SetSeed(stmtSeed)
	h.Write(query)
	h.WriteByte(0)
	h.Write(types)
	var e [8]byte
	for i := range e {
		e[i] = byte(epoch >> (8 * i))
	}
	h.Write(e[:])
	return h.Sum64()
}

// cacheable reports whether an unnamed statement's text, a view of the client message
// being handled, may be served from the cache. The pin classifier has already looked at
// the same text (stickyNeed), so maybeInteresting answers from its memo.
func (s *Session) cacheable(query []byte) bool {
	if len(query) == 0 {
		return false
	}
	q := unsafe.String(&query[0], len(query))
	l := s.lead(q)
	return !l.Interesting && l.Keyword != sqlscan.KwDrop
}

// namesOrClears reports whether q may be what execOf, prepOf or clearOf look for: an
// EXECUTE (or EXPLAIN EXECUTE), a PREPARE, or a text MaybeInteresting.
func (s *Session) namesOrClears(q string) bool {
	l := s.lead(q)
	return l.Interesting || leadsSQLStatement(l.Keyword)
}

// parseUnnamed handles a client's Parse of the unnamed statement; m is the message, rest
// its body after the name, query and types what rest holds (link.ParseFields).
func (s *Session) parseUnnamed(c *pool.Conn, m, rest, query, types []byte) error {
	s.roomUnnamed(c)
	s.beginUnnamed()
	s.unnamed.pend = true
	// A client with a search_path of its own is not served from the cache, whose
	// statements are those of clients without one (stmtScope).
	if !s.cacheUnnamed || !s.cacheable(query) || s.stmtScope() != "" {
		var op clearOp
		// Most texts are none of an EXECUTE, a PREPARE or a statement that clears names:
		// their Lead says so at once.
		if len(query) > 0 && s.namesOrClears(unsafe.String(&query[0], len(query))) {
			q := unsafe.String(&query[0], len(query))
			if text, e := s.execOf(q); e != nil {
				return s.parseUnnamedExec(c, text, e, types)
			}
			if p := s.prepOf(q); p != nil {
				return s.parseUnnamedPrep(c, p, types)
			}
			op = s.clearOf(q)
			if op.all() {
				s.staleAll(c) // harmless if it is never executed
			}
		}
		err := s.parsePlain(c, m, rest)
		s.unnamed.setOp(op)
		return err
	}
	epoch := s.srv.stmtEpoch.Load()
	key := stmtKey(query, types, epoch)
	s.mu.Lock()
	st := s.stateOf(c)
	if s.TxStatus == 'E' {
		s.mu.Unlock()
		return s.parsePlain(c, m, rest)
	}
	if def, found, usable := st.stmts.Find(key, query, types, s.Reqs); found {
		s.unnamed.use(def)
		if usable {
			st.stmts.UnnamedHits.Add(1)
			return s.answerParse(c) // unlocks s.mu
		}
		st.stmts.UnnamedMisses.Add(1)
		s.mu.Unlock()
		b, es := s.prepareOn(c, st, def, true, s.scratch[:0], false)
		es[len(es)-1].Seq = s.unnamed.seq() // the client's Parse
		return s.send(c, b, es...)
	}
	st.stmts.UnnamedMisses.Add(1)
	if st.seen == nil {
		st.seen = new(link.Sketch)
	}
	if !st.seen.Seen(key) {
		s.mu.Unlock()
		return s.parsePlain(c, m, rest)
	}
	def := newStmtDef(string(query), append([]byte(nil), types...), "", epoch)
	s.unnamed.use(def)
	present, stale := st.stmts.peek(def.server, s.Reqs, def)
	if present && !stale {
		// A client's named statement of the same text: share it.
		st.stmts.Attach(def.server, def, def.key, def.query, def.types)
		return s.answerParse(c)
	}
	s.mu.Unlock()
	b, es := s.prepareOn(c, st, def, stale, s.scratch[:0], false)
	es[len(es)-1].Seq = s.unnamed.seq() // the client's Parse
	return s.send(c, b, es...)
}

// parsePlain forwards the client's Parse of the unnamed statement as it is.
func (s *Session) parsePlain(c *pool.Conn, m, rest []byte) error {
	s.unnamed.record(rest)
	return s.send(c, m, expect{Kind: 'P', Seq: s.unnamed.seq()})
}

// parseComplete is the ParseComplete message; stubParse parses a statement that needs
// no analysis as the unnamed one.
var (
	parseComplete = []byte{'1', 0, 0, 0, 4}
	stubParse     = link.AppendStmtParse(nil, "", stubQuery)
)

// stubQuery is a statement PostgreSQL parses without analysis but refuses to parse in a
// failed transaction (25P02); it is never executed.
const stubQuery = "DEALLOCATE pgmux_stub"

// answerParse answers a Parse the server already has: after the answers still due, or
// now when none is. s.mu is held and released here.
//
// pgmux answers it only when it knows the transaction status PostgreSQL will have at
// that point: no earlier request (Sync, Query) is still unanswered. Behind one that is,
// the transaction may turn out failed, where PostgreSQL answers a Parse with 25P02; so
// the server gets a Parse of a utility statement as the unnamed one instead (never
// executed), which costs it no analysis and answers exactly as the client's Parse would:
// ParseComplete, or that error. (An empty query would not do: PostgreSQL parses it
// without the failed-transaction check.)
func (s *Session) answerParse(c *pool.Conn) error {
	switch link.AnswerParse(s.ErrSkip, s.Pending, s.q.len()) {
	case link.ParseIgnored:
		s.mu.Unlock()
		// PostgreSQL would ignore this Parse too: it is told as the server tells a skip.
		g := uint16(s.unnamed.seq())
		s.unnamed.reportSkipped(g, g)
		return nil
	case link.ParseStub:
		s.mu.Unlock()
		return s.send(c, stubParse, expect{Kind: 'P', Seq: s.unnamed.seq()})
	case link.ParseQueued:
		s.q.push(&expect{Kind: 'P', Fake: true, Seq: s.unnamed.seq()}) // skipped behind a failed Parse: none
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// Nothing is outstanding: the server's reader has written every earlier answer, or
	// is writing the last one and holds wmu until it has.
	s.wmu.Lock()
	defer s.unlockW()
	if s.closed.Load() {
		return nil
	}
	s.ops.out.Add(uint64(len(parseComplete)))
	if err := s.wr.Write(parseComplete); err != nil {
		s.clientWriteFailed()
		return nil
	}
	if s.rd.Buffered() > 0 {
		s.unnamed.unflushed = true // the client's Flush or Sync, or the reader, sends it
		return nil
	}
	if err := s.wr.Flush(); err != nil {
		s.clientWriteFailed()
	}
	return nil
}

// flushAnswered sends what answerParse wrote but did not flush, for a client's Flush:
// the server may have nothing to answer it with.
func (s *Session) flushAnswered() {
	if !s.unnamed.unflushed {
		return
	}
	s.unnamed.unflushed = false
	if !s.wmu.TryLock() {
		return // its holder took it after the write and flushes before it lets go
	}
	defer s.unlockW()
	if s.wr.Buffered() > 0 && !s.closed.Load() {
		if err := s.wr.Flush(); err != nil {
			s.clientWriteFailed()
		}
	}
}

// answerFakes writes the ParseCompletes of fake Parses that have reached the head of the
// queue; the server's reader calls it holding wmu.
func (s *Session) answerFakes() {
	n := 0
	s.mu.Lock()
	for {
		e, ok := s.q.peek()
		if !ok || !e.Fake {
			break
		}
		s.q.pop()
		n++
	}
	s.mu.Unlock()
	if s.closed.Load() {
		return
	}
	for ; n > 0; n-- {
		s.ops.out.Add(uint64(len(parseComplete)))
		if err := s.wr.Write(parseComplete); err != nil {
			s.clientWriteFailed()
			return
		}
	}
}
