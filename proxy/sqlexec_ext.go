package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// SQL EXECUTE sent with the extended protocol: a Parse of "EXECUTE p(1)" (or EXPLAIN
// EXECUTE p), then Bind and Execute, as pgx with arguments, JDBC and psycopg send an
// app's EXECUTE. The servers know the client's statement p only under pgmux's name, so
// pgmux registers the EXECUTE with that name in the text (stmtExec) and, wherever it
// prepares or binds it (ensure, parseOn, sendUnnamed), makes sure the server has p under
// that name first: PostgreSQL works out the EXECUTE's result columns when it is parsed
// and its portal kind when it is bound, both from p. The client's statement p stays the
// one the client has now: once p is deallocated, or prepared again as another statement,
// the EXECUTE is made anew from the client's text (execCurrent), and when p is gone the
// server gets that text as written and answers 26000 for the client's name, as
// PostgreSQL does.
//
// Not rewritten: an unnamed EXPLAIN EXECUTE served from the statement cache
// (cache_unnamed_statements), and anything in unnamed mode (prepared_statement_mode):
// there the server answers 26000.

// stmtExec is what a client statement that is one SQL EXECUTE of another of the
// client's statements executes.
type stmtExec struct {
	name       string   // the client's name of the statement executed
	target     *stmtDef // that statement when the EXECUTE was made (nil: none)
	orig       string   // the client's text
	start, end int      // the name token in orig
}

// text is the client's EXECUTE with target's server name in place of the client's name,
// or as the client wrote it when target is nil.
func (e *stmtExec) text(target *stmtDef) string {
	if target == nil {
		return e.orig
	}
	return e.orig[:e.start] + target.server + e.orig[e.end:]
}

// execOf reports whether q is one SQL EXECUTE of a statement the client has, and
// returns it with the text to give servers. Only servers that keep statements
// (prepCache) have the client's statements under pgmux's names.
func (s *Session) execOf(q string) (string, *stmtExec) {
	if s.prep != prepCache {
		return q, nil
	}
	kw := s.lead(q).Keyword // q is a view of the client's message: the memo has it
	if kw != sqlscan.KwExecute && kw != sqlscan.KwExplain {
		return q, nil
	}
	st, ok := sqlStatementFirst(q, kw)
	if !ok || st.Kind != sqlscan.KindExecute {
		return q, nil
	}
	target := s.lookupStmt([]byte(st.Name))
	if target == nil {
		return q, nil // the server says 26000 for the client's name, as PostgreSQL does
	}
	e := &stmtExec{name: strings.Clone(st.Name), target: target, orig: strings.Clone(q), start: st.start, end: st.end}
	return e.text(target), e
}

// execNeed adds to v what the statement an EXECUTE in q executes does to session state.
func (s *Session) execNeed(q string, v verdict) verdict {
	if _, e := s.execOf(q); e != nil {
		v.Pin |= e.target.pin
		v.Release = v.Release || e.target.release
		if v.Set == nil {
			v.Set = e.target.set
		}
	}
	return v
}

// withExec completes def, made from e's text, as an EXECUTE of e.target: it does what
// that statement does to session state.
func withExec(def *stmtDef, e *stmtExec) *stmtDef {
	def.clear.exec = e
	if t := e.target; t != nil {
		def.pin |= t.pin
		def.release = def.release || t.release
		if def.set == nil {
			def.set = t.set
		}
	}
	return def
}

// execCurrent returns the statement to run for the client's statement def (named name;
// "" for the unnamed one): def itself unless it is an EXECUTE of a statement the client
// has since deallocated or made anew, then the EXECUTE made again for what the client
// has under that name now, registered in def's place.
func (s *Session) execCurrent(name []byte, def *stmtDef) *stmtDef {
	e := def.clear.exec
	if e == nil {
		return def
	}
	cur := s.lookupStmt([]byte(e.name))
	if cur == e.target {
		return def
	}
	ne := *e
	ne.target = cur
	nd := withExec(newStmtDef(ne.text(cur), def.types, s.stmtScope(), s.srv.stmtEpoch.Load()), &ne)
	nd.checked.Store(true) // the client's Parse succeeded
	if len(name) > 0 {
		born := def.born
		s.keep(string(name), nd)
		nd.born = born
	} else if s.unnamed.def == def {
		s.unnamed.def = nd
	}
	return nd
}

// ensureTarget prepares what def executes on c in front of def's use, when def is an
// EXECUTE of a client statement.
func (s *Session) ensureTarget(c *pool.Conn, def *stmtDef, b []byte) ([]byte, []expect) {
	if def.clear.exec == nil || def.clear.exec.target == nil {
		return b, nil
	}
	b, es, _ := s.ensure(c, def.clear.exec.target, b)
	return b, es
}

// execFix returns the fix that makes the server's error for an Execute of e name the
// client's statement, at the client's positions.
func (e *stmtExec) execFix() *errFix {
	if e.target == nil {
		return nil
	}
	at, delta := positionFix(e.orig, e.start, e.end, e.target.server)
	return &errFix{from: e.target.server, to: e.name, at: at, delta: delta}
}

// parseUnnamedExec sends the client's Parse of an unnamed EXECUTE with pgmux's name in
// its text, the statement it executes prepared in front.
func (s *Session) parseUnnamedExec(c *pool.Conn, text string, e *stmtExec, types []byte) error {
	b, es, _ := s.ensure(c, e.target, s.scratch[:0])
	body := wire.AppendString(nil, text)
	body = append(body, types...)
	b = link.AppendParseAs(b, "", body)
	s.unnamed.record(body)
	s.unnamed.setOp(clearOp{exec: e})
	err := s.send(c, b, append(es, expect{Kind: 'P', Seq: s.unnamed.seq()})...)
	s.keepScratch(b)
	return err
}

// unnamedExecBody returns the body to parse the client's unnamed EXECUTE with on a
// server in a later request, and the statement to prepare in front (nil: none): the
// EXECUTE made again when the client's statement of that name changed since.
func (s *Session) unnamedExecBody(u *unnamedStmt) ([]byte, *stmtDef) {
	e := u.op().exec
	cur := s.lookupStmt([]byte(e.name))
	if cur == e.target {
		return u.body, cur
	}
	_, types, err := wire.CString(u.body)
	if err != nil {
		return u.body, nil
	}
	ne := *e
	ne.target = cur
	body := wire.AppendString(nil, ne.text(cur))
	body = append(body, types...)
	u.body = body
	u.setOp(clearOp{exec: &ne})
	return body, cur
}
