package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// SQL PREPARE sent with the extended protocol: a Parse of "PREPARE x [(types)] AS stmt",
// named or unnamed, then Bind and Execute, as pgx (QueryExecModeExec and the like), JDBC
// and psycopg send an app's PREPARE. As for a PREPARE sent in a Query (sqlprep.go), the
// client is not pinned: x becomes one of the client's statements (Session.stmts), which
// servers prepare under pgmux's name wherever the client executes it (EXECUTE in a
// Query, in a Parse: sqlexec_ext.go), and DEALLOCATE forgets (stmtclear_ext.go).
//
// Servers get the client's Parse with pgmux_noop in place of x ("PREPARE pgmux_noop AS
// stmt"): PostgreSQL analyses a PREPARE's statement only when it is executed, so the
// Parse answers as the client's would (a syntax error, its position moved back to the
// client's text). Each Execute of such a portal goes after a hidden Close of pgmux_noop
// and, when the client already has x, a hidden Parse of an empty pgmux_noop: the server
// then answers the Execute as PostgreSQL would for x, with CommandComplete PREPARE, the
// statement's own errors or 42P05 for the duplicate, naming x. x is registered when the
// Execute is sent and forgotten if the server fails or skips it (expect.Reg), so a
// pipelined EXECUTE x behind it finds it. In a failed transaction the server refuses
// the Execute (25P02) and nothing is registered. So in cache mode (where the Query
// form is rewritten too).
//
// In unnamed mode (prepared_statement_mode) such a PREPARE pins the client (pin reason
// "prepare"), its Parse goes as written, and x is an own statement, as one a Query's
// PREPARE makes (sqlmulti.go): the server makes it under the client's name, and it is
// the client's when the server completes the Execute (the drop hand-off,
// stmtclear.go). A name the server has under the client's name (own) gets the server's
// own 42P05. But a name the client made with Parse is on no server under its name: the
// Execute of its PREPARE would succeed where PostgreSQL answers 42P05. The server
// runs it as in cache mode instead, in place of the client's Execute: a PREPARE
// pgmux_noop of the same text, executed as the unnamed statement after a hidden Close
// and empty Parse of pgmux_noop, whose answer (the statement's own errors, else 42P05)
// names x. Nothing is left under the client's name for another client to meet.

// sqlPrep is the client's SQL PREPARE in a Parse: executing it makes the client's
// statement name.
type sqlPrep struct {
	name       string // the client's statement name
	body       string // the statement prepared
	types      string // its parameter type list as written, parenthesized, or ""
	orig       string // the client's text
	start, end int    // the name token in orig
	// own: unnamed mode, where the server runs the PREPARE as written (executeOwnPrep).
	own bool
}

// prepOf reports whether q, the text of a Parse, is one SQL PREPARE that the session
// handles without pinning, and returns it.
func (s *Session) prepOf(q string) *sqlPrep {
	if s.prep != prepCache {
		return nil
	}
	return s.sqlPrepOf(q)
}

// sqlPrepOf reports whether q, the text of a Parse, is one SQL PREPARE, and returns it.
func (s *Session) sqlPrepOf(q string) *sqlPrep {
	kw := s.lead(q).Keyword
	if kw != sqlscan.KwPrepare {
		return nil
	}
	st, ok := sqlStatementFirst(q, kw)
	if !ok || st.Kind != sqlscan.KindPrepare {
		return nil
	}
	types := ""
	if len(st.ParamTypes) > 0 {
		types = "(" + strings.Join(st.ParamTypes, ", ") + ")"
	}
	return &sqlPrep{name: strings.Clone(st.Name), body: strings.Clone(st.PrepareBody), types: types,
		orig: strings.Clone(q), start: st.start, end: st.end}
}

// text is the PREPARE servers get: pgmux_noop in place of the client's name.
func (p *sqlPrep) text() string { return p.orig[:p.start] + noopStmt + p.orig[p.end:] }

// fix makes a server's error about text read as one about the client's.
func (p *sqlPrep) fix() *errFix {
	at, delta := positionFix(p.orig, p.start, p.end, noopStmt)
	return &errFix{from: noopStmt, to: p.name, at: at, delta: delta}
}

// parseUnnamedPrep sends the client's Parse of an unnamed PREPARE with pgmux_noop in
// place of its name.
func (s *Session) parseUnnamedPrep(c *pool.Conn, p *sqlPrep, types []byte) error {
	body := wire.AppendString(nil, p.text())
	body = append(body, types...)
	b, start := wire.Begin(s.scratch[:0], 'P')
	b = append(b, 0)
	b = append(b, body...)
	b = wire.Finish(b, start)
	s.unnamed.record(body)
	s.unnamed.setOp(clearOp{prep: p})
	err := s.send(c, b, expect{Kind: 'P', Fix: p.fix(), Seq: s.unnamed.seq()})
	s.keepScratch(b)
	return err
}

// executePrep sends the client's Execute of a portal of a SQL PREPARE (m, the whole
// message), registering the client's statement. The Execute's expect is queued (account).
func (s *Session) executePrep(c *pool.Conn, p *sqlPrep, m []byte) error {
	s.mu.Lock()
	skipping := s.ErrSkip
	s.mu.Unlock()
	if skipping {
		return s.writeScratch(c, append(s.scratch[:0], m...)) // the server skips it
	}
	b := link.AppendClose(s.scratch[:0], 'S', noopStmt)
	es := []expect{{Kind: 'C', Hide: true}}
	if p.own {
		return s.executeOwnPrep(c, p, m)
	}
	var def *stmtDef
	if s.lookupStmt([]byte(p.name)) != nil {
		b = link.AppendEmptyParse(b, noopStmt) // 42P05, as for x
		es = append(es, expect{Kind: 'P', Hide: true})
	} else {
		def = s.prepDef(p)
		s.noteDDL(def.query, sqlscan.LeadOf(def.query))
		s.keep(p.name, def)
	}
	s.mu.Lock()
	s.q.pushBeforeTail(es...)
	if e := s.q.tail(); e != nil && e.Kind == 'E' {
		e.Fix, e.Reg = p.fix(), def
	}
	s.mu.Unlock()
	if l := s.linkLog(c); l != nil {
		l.Skip('E') // not replayed (retry.go)
	}
	return s.writeScratch(c, append(b, m...))
}

// prepDef is the statement executing p makes.
func (s *Session) prepDef(p *sqlPrep) *stmtDef {
	def := newSQLStmtDef(p.body, p.types, s.stmtScope(), s.srv.stmtEpoch.Load())
	v := s.classify(def.query)
	def.pin, def.release, def.set = v.Pin, v.Release, v.Set
	def.checked.Store(true) // if the server refuses the PREPARE, it is not the client's
	return def
}

// executeOwnPrep is executePrep in unnamed mode: the client's Execute m of its PREPARE
// goes as written, and makes the client's own statement when the server completes it;
// for a name the client made with Parse, a PREPARE of pgmux_noop answers in its place.
// The Execute's expect is queued.
func (s *Session) executeOwnPrep(c *pool.Conn, p *sqlPrep, m []byte) error {
	def := s.lookupStmt([]byte(p.name))
	s.mu.Lock()
	failedTx := s.TxStatus == 'E'
	s.mu.Unlock()
	switch {
	case failedTx || def != nil && def.own:
		// The server refuses it (25P02), or has x under its name: 42P05 from it.
		return s.writeScratch(c, append(s.scratch[:0], m...))
	case def == nil:
		own := s.prepDef(p)
		own.own = true
		s.noteDrops([]clearDrop{{name: p.name, def: own, prep: true}})
		// A statement message behind it waits for its answer (applyClears): a Flush
		// makes the server send it now.
		b := append(s.scratch[:0], m...)
		return s.writeScratch(c, append(b, 'H', 0, 0, 0, 4))
	}
	b := link.AppendNoop(s.scratch[:0], noopStmt)
	b = link.AppendRunUnnamed(b, p.text())
	s.unnamed.live = false // the server's unnamed statement is now that PREPARE
	s.mu.Lock()
	s.q.pushBeforeTail(expect{Kind: 'C', Hide: true}, expect{Kind: 'P', Hide: true},
		expect{Kind: 'P', Hide: true}, expect{Kind: 'B', Hide: true})
	if e := s.q.tail(); e != nil && e.Kind == 'E' {
		e.Fix = p.fix() // its Execute's answer is the client's
	}
	s.mu.Unlock()
	return s.writeScratch(c, b)
}
