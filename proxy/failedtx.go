package proxy

import (
	"encoding/binary"
	"strconv"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// Statements the server lacks, used in a failed transaction. PostgreSQL refuses most
// messages there with 25P02, each from its own routine, and answers some: a Describe of
// a statement that returns no rows (exec_describe_statement_message refuses only those
// with a result: their RowDescription needs the catalogs), and every message of a
// transaction-exit statement (ROLLBACK, COMMIT...). pgmux's hidden Parse in front of a
// Bind or Describe is refused there by exec_parse_message, so in its place pgmux sends
// what the server answers as PostgreSQL answers the client's message:
//
//   - a Bind, the transaction known failed: the Bind of a stand-in (failedBind);
//   - a Bind behind requests not yet answered, which may leave the transaction failed by
//     the time the server reads it: a guard in front of the hidden Parse (bindGuard);
//   - a Describe of a statement a server described before with NoData: the empty
//     statement with the parameter types it reported then, described (failedDescribe).
//
// A statement that ends a transaction is prepared as usual: PostgreSQL parses it there.
// In prepared_statement_mode = unnamed the server never has the client's statement (each
// Bind and Describe goes behind a Parse of the unnamed statement), so the same applies to
// every Bind and Describe there, but for the guard. What stays apart from PostgreSQL: a
// Describe of a statement that returns rows, or of one never described through pgmux,
// gets the 25P02 of pgmux's Parse (routine and line fields exec_parse_message's), and so
// does, in unnamed mode, a Bind pipelined behind the request that fails the transaction;
// a Bind whose parameter count is wrong, pipelined so, gets 25P02 where PostgreSQL
// checks the count first (08P01).

// stmtDesc is what a server answered a client's Describe of a statement.
type stmtDesc struct {
	params []byte // ParameterDescription's body: the layout of a Parse's type section
	rows   bool   // RowDescription, not NoData
}

// maxDescParams bounds the ParameterDescription pgmux keeps (2,047 parameters).
const maxDescParams = 8 << 10

// A Bind in a failed transaction of a statement the server lacks. PostgreSQL refuses the
// Bind itself (25P02 from exec_bind_message). When pgmux knows the transaction is failed
// at that point (status 'E', nothing else outstanding), the Bind goes to a stand-in the
// server accepts in that state: an empty statement with as many parameters as the
// client's statement has (the types its Parse declared, the highest $n in its text): a
// Bind with another count gets PostgreSQL's 08P01 naming the client's statement.

// failedBind returns what to send for a Bind of def (client name name; tail is the Bind
// after the statement name) when the transaction is known failed and the server lacks
// def, with done set. Otherwise it returns what goes in front of the Bind and its
// preparation, in s.scratch: when the transaction may be failed by the time the server
// reads them, the guard (bindGuard), else nothing.
func (s *Session) failedBind(c *pool.Conn, portal, name []byte, def *stmtDef, tail []byte) (b []byte, es []expect, done bool) {
	b = s.scratch[:0]
	if s.prep != prepCache && s.prep != prepUnnamed {
		return b, nil, false
	}
	s.mu.Lock()
	failed := s.TxStatus == 'E' && s.Pending == 0 && s.q.len() == 0 && !s.ErrSkip
	// In unnamed mode the server never has def: a guard there would go in front of every
	// Bind a client pipelines behind an unanswered request.
	maybe := !failed && !s.ErrSkip && (s.Pending > 0 || s.TxStatus == 'E') && s.prep == prepCache
	present, stale := false, false
	if (failed || maybe) && s.prep == prepCache {
		present, stale = s.stateOf(c).stmts.peek(def.server, s.Reqs, def)
	}
	s.mu.Unlock()
	if !failed && !maybe || present && !stale || sqlscan.TxExit(def.query) {
		return b, nil, false
	}
	if maybe {
		b, es = bindGuard(b)
		return b, es, false
	}
	params := highestParam(def.query)
	if len(def.types) >= 2 {
		params = max(params, int(binary.BigEndian.Uint16(def.types)))
	}
	b = link.AppendClose(b, 'S', noopStmt)
	types := binary.BigEndian.AppendUint16(nil, uint16(params))
	for range params {
		types = binary.BigEndian.AppendUint32(types, 23) // int4
	}
	b = link.AppendParse(b, noopStmt, "", types) // the empty query: parsed without the failed-transaction check
	b = link.AppendBindAs(b, portal, noopStmt, tail)
	return b, []expect{{Kind: 'C', Hide: true}, {Kind: 'P', Hide: true},
		{Kind: 'B', Fix: &errFix{from: noopStmt, to: string(name)}}}, true
}

// bindGuard appends what goes in front of the hidden Parse of a Bind's statement when
// the transaction may be failed by the time the server reads them (a request before it
// is unanswered): a Bind of the empty statement, without parameters, to a portal of
// pgmux's. In a failed transaction the server refuses it with exec_bind_message's 25P02,
// the error PostgreSQL gives the client's Bind, and skips the Parse and the client's
// messages up to Sync, as PostgreSQL skips them; otherwise it binds it, the portal is
// closed, and the statement is prepared and bound as usual. A hidden message's error
// reaches the client (link.ErrorRule).
func bindGuard(b []byte) ([]byte, []expect) {
	b = link.AppendNoop(b, noopStmt)
	b, st := wire.Begin(b, 'B')
	b = wire.AppendString(b, noopStmt) // the portal
	b = wire.AppendString(b, noopStmt)
	b = append(b, 0, 0, 0, 0, 0, 0) // no parameter formats, parameters or result formats
	b = wire.Finish(b, st)
	b = link.AppendClose(b, 'P', noopStmt)
	return b, []expect{{Kind: 'C', Hide: true}, {Kind: 'P', Hide: true, Noop: true},
		{Kind: 'B', Hide: true}, {Kind: 'C', Hide: true}}
}

// failedDescribe returns what to send for a client's Describe of def, with ok set, when
// the transaction is or may be failed by the time the server reads it, the server lacks
// def and a server described def before with NoData: a Describe of the empty statement
// with def's parameter types, which the server answers in any state with the
// ParameterDescription and NoData PostgreSQL sends for def itself, failed transaction
// or not.
func (s *Session) failedDescribe(c *pool.Conn, def *stmtDef) (b []byte, es []expect, ok bool) {
	d := def.desc.Load()
	if s.prep != prepCache && s.prep != prepUnnamed || d == nil || d.rows {
		return nil, nil, false
	}
	s.mu.Lock()
	mayFail := (s.TxStatus == 'E' || s.Pending > 0) && !s.ErrSkip
	present, stale := false, false
	if mayFail && s.prep == prepCache {
		present, stale = s.stateOf(c).stmts.peek(def.server, s.Reqs, def)
	}
	s.mu.Unlock()
	if !mayFail || present && !stale {
		return nil, nil, false
	}
	b = link.AppendClose(s.scratch[:0], 'S', noopStmt)
	b = link.AppendParse(b, noopStmt, "", d.params)
	b = link.AppendDescribeStmt(b, noopStmt)
	return b, []expect{{Kind: 'C', Hide: true}, {Kind: 'P', Hide: true, Noop: true}, {Kind: 'D'}}, true
}

// learnShape records what a server answered the client's Describe of e.Def: the
// message typ ends it (NoData or RowDescription), e.Val holds its ParameterDescription
// (readParams). s.mu is held.
func learnShape(e answered, typ byte) {
	d := e.Def
	if d == nil || d.desc.Load() != nil || typ == 'n' && len(e.Val) < 2 {
		return
	}
	d.desc.Store(&stmtDesc{params: []byte(e.Val), rows: typ == 'T'})
}

// readParams relays the ParameterDescription of a client's Describe of a statement whose
// shape pgmux has not learned, keeping its body on the request until the NoData or
// RowDescription that ends it (learnShape).
func (s *Session) readParams(rd *wire.Reader, n int, hide bool) error {
	if n > maxDescParams {
		return s.forward(rd, n)
	}
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if e := s.q.front(); e != nil && e.Kind == 'D' && e.Def != nil {
		e.Val = string(wire.Body(m))
	}
	s.mu.Unlock()
	s.relayRead(m, hide)
	return nil
}

// highestParam returns the highest $n in q: with the types its Parse declared, what
// PostgreSQL counts as the statement's parameters.
func highestParam(q string) int {
	n := 0
	lx := sqlscan.NewLexer(q)
	for tok := lx.Next(); tok.Kind != sqlscan.TokEOF; tok = lx.Next() {
		if tok.Kind == sqlscan.TokParam {
			if v, err := strconv.Atoi(tok.Text[1:]); err == nil && v <= 65535 {
				n = max(n, v)
			}
		}
	}
	return n
}
