package proxy

import (
	"encoding/binary"
	"strconv"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/proxy/link"
)

// A Bind in a failed transaction of a statement the server lacks. PostgreSQL refuses the
// Bind itself (25P02 from exec_bind_message); pgmux's hidden Parse in front of it would
// be refused first, with an error whose routine and line differ (exec_parse_message).
// When pgmux knows the transaction is failed at that point (status 'E', nothing else
// outstanding), the Bind goes instead to a stand-in the server accepts in that state: an
// empty statement with as many parameters as the client's statement has (the types its
// Parse declared, the highest $n in its text): a Bind with another count gets
// PostgreSQL's 08P01 naming the client's statement. Statements that end a transaction (COMMIT, ROLLBACK, ...) run in
// a failed one and are prepared as usual.

// failedBind returns what to send for a Bind of def (client name name; tail is the Bind
// after the statement name) when the transaction is known failed and the server lacks
// def; ok is false otherwise.
func (s *Session) failedBind(c *pool.Conn, portal, name []byte, def *stmtDef, tail []byte) (b []byte, es []expect, ok bool) {
	if s.prep != prepCache {
		return nil, nil, false
	}
	s.mu.Lock()
	failed := s.TxStatus == 'E' && s.Pending == 0 && s.q.len() == 0 && !s.ErrSkip &&
		!sqlscan.TxExit(def.query)
	present, stale := false, false
	if failed {
		present, stale = s.stateOf(c).stmts.peek(def.server, s.Reqs, def)
	}
	s.mu.Unlock()
	if !failed || (present && !stale) {
		return nil, nil, false
	}
	params := highestParam(def.query)
	if len(def.types) >= 2 {
		params = max(params, int(binary.BigEndian.Uint16(def.types)))
	}
	b = link.AppendClose(s.scratch[:0], 'S', noopStmt)
	types := binary.BigEndian.AppendUint16(nil, uint16(params))
	for range params {
		types = binary.BigEndian.AppendUint32(types, 23) // int4
	}
	b = link.AppendParse(b, noopStmt, "", types) // the empty query: parsed without the failed-transaction check
	b = link.AppendBindAs(b, portal, noopStmt, tail)
	return b, []expect{{Kind: 'C', Hide: true}, {Kind: 'P', Hide: true},
		{Kind: 'B', Fix: &errFix{from: noopStmt, to: string(name)}}}, true
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
