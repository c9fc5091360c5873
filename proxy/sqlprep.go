package proxy

import (
	"strings"
	"unsafe"

	"github.com/pgmux/pgmux/proxy/link"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// SQL PREPARE, EXECUTE and DEALLOCATE in transaction mode, without pinning.
//
// PostgreSQL keeps SQL-level and protocol-level prepared statements in one namespace per
// session, so pgmux keeps them in the client's one registry (Session.stmts): PREPARE x
// makes a client statement like a Parse of x does, a Parse of x after PREPARE x is a
// duplicate (42P05), EXECUTE x runs a statement made either way, DEALLOCATE x forgets
// either. A simple Query that is exactly one such statement is rewritten, with what it
// needs sent in front of it in the same write (no extra round trip):
//
//   - PREPARE x [(types)] AS stmt is sent as PREPARE pgmux_noop [(types)] AS stmt, after a
//     hidden Close of pgmux_noop (and, when the client already has x, a hidden Parse of
//     it): the server checks the statement as PostgreSQL would for x, so the client gets
//     PREPARE's CommandComplete or PostgreSQL's error (42P05 for a duplicate, reported
//     after errors in the statement itself, as PostgreSQL does). On success x is the
//     client's; servers prepare it under pgmux's name when it is first executed there.
//   - EXECUTE x[(args)] becomes EXECUTE pgmux_<hash>[(args)], preceded by a hidden
//     PREPARE pgmux_<hash> ... (or a hidden Parse and Sync for a statement the client
//     made with Parse) when the server lacks it. If that hidden PREPARE fails (DDL since,
//     say), the client sees its error in place of the EXECUTE's.
//   - DEALLOCATE [PREPARE] x is answered by the server's DEALLOCATE of pgmux_noop, and
//     x is forgotten when that completes; for a name the client does not have it goes
//     to the server as written, which answers 26000 as PostgreSQL does.
//   - DEALLOCATE ALL and DISCARD ALL clear the client's registry (query.go).
//
// The server's errors are made to read as the client's: pgmux's names in them become the
// client's and error positions are moved back (errfix.go). In a failed transaction the
// statements go to the server as written: it refuses them (25P02), as PostgreSQL does,
// and nothing changes. What is not rewritten here: these statements inside a
// multi-statement Query (sqlmulti.go gives the server the client's statements under their
// names instead, and records its PREPAREs when the server completes them) or sent with
// the extended protocol (PREPARE: sqlprep_ext.go, EXECUTE:
// sqlexec_ext.go, DEALLOCATE: stmtclear_ext.go).
// EXPLAIN [options] EXECUTE x is rewritten like EXECUTE x; CREATE TABLE ... AS EXECUTE x
// is not.

// sqlStmt is a rewritable statement: the scanned statement, and where its name token
// lies in the query text.
type sqlStmt struct {
	sqlscan.Statement
	start, end int // the name token, as byte offsets in the query
}

// sqlStatementOf reports whether q is a single SQL PREPARE, EXECUTE or DEALLOCATE of a
// name (not ALL), or an EXPLAIN [options] EXECUTE (returned as an EXECUTE), returning it.
func sqlStatementOf(q string) (sqlStmt, bool) {
	return sqlStatementFirst(q, sqlscan.LeadKeyword(q))
}

// leadsSQLStatement reports whether a text whose first word is kw may be what
// sqlStatementOf looks for: the callers on every Query ask it first, which costs less
// than sqlStatementFirst's answer for none.
func leadsSQLStatement(kw sqlscan.Keyword) bool {
	switch kw {
	case sqlscan.KwPrepare, sqlscan.KwExecute, sqlscan.KwDeallocate, sqlscan.KwExplain:
		return true
	}
	return false
}

// sqlStatementFirst is sqlStatementOf for kw = sqlscan.LeadKeyword(q).
func sqlStatementFirst(q string, kw sqlscan.Keyword) (sqlStmt, bool) {
	if !leadsSQLStatement(kw) {
		return sqlStmt{}, false
	}
	explain := kw == sqlscan.KwExplain
	sts := sqlscan.Scan(q)
	if len(sts) != 1 {
		return sqlStmt{}, false
	}
	st := sts[0]
	switch st.Kind {
	case sqlscan.KindPrepare, sqlscan.KindExecute, sqlscan.KindDeallocate:
	case sqlscan.KindOther:
		if !explain {
			return sqlStmt{}, false
		}
	default:
		return sqlStmt{}, false
	}
	off := int(uintptr(unsafe.Pointer(unsafe.StringData(st.Text))) - uintptr(unsafe.Pointer(unsafe.StringData(q))))
	if off < 0 || off+len(st.Text) > len(q) {
		return sqlStmt{}, false
	}
	lx := sqlscan.NewLexer(st.Text)
	lx.Next() // the keyword
	tok := lx.Next()
	if explain {
		var ok bool
		if tok, ok = explainedExecute(lx, tok); !ok {
			return sqlStmt{}, false
		}
		st.Kind, st.Name = sqlscan.KindExecute, tok.Ident()
	}
	if st.Kind == sqlscan.KindDeallocate && tok.IsKeyword("prepare") {
		if next := lx.Next(); next.Kind != sqlscan.TokEOF {
			tok = next
		}
	}
	if (tok.Kind != sqlscan.TokIdent && tok.Kind != sqlscan.TokQuotedIdent) || tok.Reserved() {
		return sqlStmt{}, false // a reserved word is a syntax error, from the server
	}
	return sqlStmt{Statement: st, start: off + tok.Pos, end: off + tok.End()}, true
}

// explainedExecute reads EXPLAIN's options from tok on (a parenthesized list, or ANALYZE
// and VERBOSE) and returns the token after the EXECUTE they lead to; false if EXPLAIN
// explains something else.
func explainedExecute(lx *sqlscan.Lexer, tok sqlscan.Token) (sqlscan.Token, bool) {
	if tok.Kind == sqlscan.TokLParen {
		for depth := 1; depth > 0; {
			switch tok = lx.Next(); tok.Kind {
			case sqlscan.TokLParen:
				depth++
			case sqlscan.TokRParen:
				depth--
			case sqlscan.TokEOF:
				return tok, false
			}
		}
		tok = lx.Next()
	}
	for tok.IsKeyword("analyze") || tok.IsKeyword("analyse") || tok.IsKeyword("verbose") {
		tok = lx.Next()
	}
	if !tok.IsKeyword("execute") {
		return tok, false
	}
	return lx.Next(), true
}

// sqlNeed adjusts what classify found in a Query's text when the session rewrites it: a
// PREPARE does not pin, an EXECUTE does what its statement does.
func (s *Session) sqlNeed(q string, pin pinReason, release bool) (pinReason, bool) {
	if s.prep == prepPass {
		return pin, release
	}
	l := s.lead(q)
	if !leadsSQLStatement(l.Keyword) {
		return s.byNameNeed(q, l, pin, release)
	}
	st, ok := sqlStatementFirst(q, l.Keyword)
	if !ok || s.prep != prepCache {
		return s.byNameNeed(q, l, pin, release)
	}
	pin &^= pinPrepare
	if st.Kind == sqlscan.KindExecute {
		if def := s.lookupStmt([]byte(st.Name)); def != nil {
			pin, release = pin|def.pin, release || def.release
			if def.set != nil {
				s.noteRequest(def.set, false, false) // EXECUTE of a SELECT set_config(...)
			}
		}
	}
	return pin, release
}

// sqlPrepared rewrites a Query that is one SQL PREPARE, EXECUTE or DEALLOCATE and sends
// it; it reports false, having sent nothing, for any other Query. The Query's expect is
// already queued (account). kw is sqlscan.LeadKeyword(q).
func (s *Session) sqlPrepared(c *pool.Conn, q string, kw sqlscan.Keyword) (bool, error) {
	if s.prep != prepCache {
		return false, nil
	}
	if !leadsSQLStatement(kw) {
		return false, nil
	}
	st, ok := sqlStatementFirst(q, kw)
	if !ok {
		return false, nil
	}
	// q views the client reader's buffer; what is kept must be copied.
	st.Name, st.PrepareBody = strings.Clone(st.Name), strings.Clone(st.PrepareBody)
	s.mu.Lock()
	failedTx := s.TxStatus == 'E'
	s.mu.Unlock()
	if failedTx {
		return false, nil // the server refuses it (25P02) as PostgreSQL would
	}
	switch st.Kind {
	case sqlscan.KindPrepare:
		return true, s.sqlPrepare(c, q, st)
	case sqlscan.KindExecute:
		def := s.lookupStmt([]byte(st.Name))
		if def == nil {
			return false, nil // the server knows no such name: 26000, as PostgreSQL says
		}
		return true, s.sqlExecute(c, q, st, def)
	default:
		def := s.lookupStmt([]byte(st.Name))
		if def == nil {
			return false, nil // 26000 from the server
		}
		// Forgotten when the server completes it (stmtclear.go): a pipelined Query may
		// have failed the transaction before it.
		s.noteDrops([]clearDrop{{name: st.Name, def: def}})
		return true, s.sqlNoop(c, q, st, true, nil)
	}
}

// sqlDef is the statement SQL PREPARE st makes. A Query of several statements makes it
// the client's when the server completes its PREPARE (sqlmulti.go), a Query of one
// PREPARE when it is sent (sqlPrepare). st.PrepareBody must not view the reader's buffer.
func (s *Session) sqlDef(st sqlStmt) *stmtDef {
	types := ""
	if len(st.ParamTypes) > 0 {
		types = "(" + strings.Join(st.ParamTypes, ", ") + ")"
	}
	def := newSQLStmtDef(st.PrepareBody, types, s.stmtScope(), s.srv.stmtEpoch.Load())
	v := s.classify(def.query)
	def.pin, def.release, def.set = v.Pin, v.Release, v.Set
	def.checked.Store(true) // if the server rejects the PREPARE, it is not the client's
	return def
}

// sqlPrepare sends PREPARE x as PREPARE pgmux_noop, registering x unless the client has
// it already (then the server reports the duplicate).
func (s *Session) sqlPrepare(c *pool.Conn, q string, st sqlStmt) error {
	if s.lookupStmt([]byte(st.Name)) != nil {
		return s.sqlNoop(c, q, st, true, nil)
	}
	def := s.sqlDef(st)
	s.noteDDL(def.query, sqlscan.LeadOf(def.query))
	s.keep(st.Name, def)
	return s.sqlNoop(c, q, st, false, def)
}

// newSQLStmtDef is a statement made by SQL PREPARE. Its identity on servers includes its
// parameter type list as written (a protocol Parse of the same text is another one).
func newSQLStmtDef(body, types, scope string, epoch uint64) *stmtDef {
	def := newStmtDef(body, []byte("\x00sql"+types), scope, epoch)
	def.types, def.sqlTypes, def.sql = []byte{0, 0}, types, true
	return def
}

// prepareSQL appends a SQL PREPARE of d under its server name, sent as the unnamed
// statement and executed: it can go anywhere in an extended-protocol request.
func (d *stmtDef) prepareSQL(b []byte) []byte {
	return link.AppendRunUnnamed(b, "PREPARE "+d.server+d.sqlTypes+" AS "+d.query)
}

// sqlNoop sends the client's statement with pgmux_noop in place of its name, after a
// hidden Close of pgmux_noop and, with exists, a hidden Parse of it (so a PREPARE fails
// with 42P05 and a DEALLOCATE succeeds). reg is the statement a PREPARE registers.
func (s *Session) sqlNoop(c *pool.Conn, q string, st sqlStmt, exists bool, reg *stmtDef) error {
	b := link.AppendClose(s.scratch[:0], 'S', noopStmt)
	es := []expect{{Kind: 'C', Hide: true}}
	if exists {
		b = link.AppendEmptyParse(b, noopStmt)
		es = append(es, expect{Kind: 'P', Hide: true})
	}
	return s.sendRenamed(c, b, es, q, st, noopStmt, reg)
}

// sqlExecute sends EXECUTE x as EXECUTE of def's server name, preparing it there first
// when the server lacks it.
func (s *Session) sqlExecute(c *pool.Conn, q string, st sqlStmt, def *stmtDef) error {
	s.mu.Lock()
	x := s.stateOf(c)
	present, stale := x.stmts.lookup(def.server, s.Reqs, def)
	var p link.Prep
	if !present || stale {
		p = x.stmts.prepare(def.server, stale, s.Reqs, nil, nil)
	}
	s.mu.Unlock()
	b, es := closesFor(s.scratch[:0], nil, def.server, p)
	gen := p.Gen
	if !present || stale {
		// In front of a Query, whose own ReadyForQuery must come whatever happens: the
		// preparation is a request of its own, and its error is the client's.
		fix := &errFix{from: def.server, to: st.Name}
		if def.sql {
			b = wire.Query(b, "PREPARE "+def.server+def.sqlTypes+" AS "+def.query)
			es = append(es, expect{Kind: 'Q', Hide: true, ShowErr: true, Stmt: def.server, Fix: fix, Prep: gen})
		} else {
			b = def.parseMsg(b, def.server)
			b = append(b, 'S', 0, 0, 0, 4)
			es = append(es, expect{Kind: 'P', Hide: true, ShowErr: true, Stmt: def.server, Fix: fix, Prep: gen},
				expect{Kind: 'S', Hide: true})
		}
	}
	return s.sendRenamed(c, b, es, q, st, def.server, nil)
}

// sendRenamed sends b (hidden requests, expected by es, queued before the client's
// Query) and then the client's Query q with name in place of its statement name.
func (s *Session) sendRenamed(c *pool.Conn, b []byte, es []expect, q string, st sqlStmt, name string, reg *stmtDef) error {
	at, delta := positionFix(q, st.start, st.end, name)
	b, mstart := wire.Begin(b, 'Q')
	b = append(b, q[:st.start]...)
	b = append(b, name...)
	b = append(b, q[st.end:]...)
	b = append(b, 0)
	b = wire.Finish(b, mstart)
	s.mu.Lock()
	s.q.pushBeforeTail(es...)
	if e := s.q.tail(); e != nil && e.Kind == 'Q' {
		e.Fix = &errFix{from: name, to: st.Name, at: at, delta: delta}
		e.Reg = reg
		if name != noopStmt {
			e.Stmt = name
		}
	}
	s.mu.Unlock()
	return s.writeScratch(c, b)
}
