package proxy

import (
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
// Owners: the session goroutine, but for failed, which the server's reader stores
// under Session.mu and the session goroutine loads and clears (atomically, without it).
type unnamedStmt struct {
	body []byte // the Parse message after the name: query, parameter types; empty when none
	live bool   // parsed on the linked server in the current request
	// unflushed: a ParseComplete pgmux wrote itself is not flushed yet (unnamed.go)
	unflushed bool
	// gen numbers the client's Parses of it (never 0 once one was sent); their expects
	// carry it (Seq). failed is the number of one the server refused, set by the server's
	// reader (onError); the session goroutine drops the statement when it is the latest
	// (current), once the request that parsed it is over, and clears an older one as it
	// meets it, so that gen, which wraps, never meets a stale one. Both fit the padding
	// after the bools: sessionWork stays in its size class.
	gen    uint16
	failed atomic.Uint32
	// def, when set, is the statement cache's statement the client's unnamed one is
	// served from (cache_unnamed_statements): Bind and Describe of "" go to it.
	def *stmtDef
	// clear is what executing it does to the client's statement names (stmtclear_ext.go).
	clear clearOp
}

// use makes the client's unnamed statement the cache's def, parsed by the client in
// the current request (live).
func (u *unnamedStmt) use(def *stmtDef) {
	u.def, u.live, u.clear = def, true, clearOp{}
	u.next()
}

// next numbers a new Parse of the client's unnamed statement. A failure left of an
// earlier one no longer matters (a load, and only after a failure a swap).
func (u *unnamedStmt) next() {
	if g := u.failed.Load(); g != 0 {
		u.failed.CompareAndSwap(g, 0)
	}
	if u.gen++; u.gen == 0 {
		u.gen = 1
	}
}

// seq is the number of the client's latest Parse of it, for its expect (Seq).
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
	u.clear = clearOp{}
	u.next()
}

// forget drops it (the client closed it).
func (u *unnamedStmt) forget() {
	u.body, u.live, u.def, u.clear = nil, false, nil, clearOp{}
}

// drop drops it and keeps its buffer for the next Parse: a failed Parse of it, or a
// simple Query.
func (u *unnamedStmt) drop() {
	u.body, u.live, u.def, u.clear = u.body[:0], false, nil, clearOp{}
}

// current returns the cache's statement the client's unnamed one is served from (nil
// when it is none or a body of its own), after a request that parsed it is over
// dropping it first if that Parse failed. Within the request the server skips
// everything after the failure anyway; a bool and, past it, one atomic load.
func (u *unnamedStmt) current() *stmtDef {
	if !u.live {
		if g := u.failed.Load(); g != 0 {
			if g == u.seq() {
				u.drop()
			}
			u.failed.CompareAndSwap(g, 0)
		}
	}
	return u.def
}

// keep is the body shed keeps while the client parks (keptWork): nil when the client
// has no unnamed statement.
func (u *unnamedStmt) keep() []byte {
	u.current()
	if len(u.body) == 0 {
		return nil
	}
	return u.body
}

// endRequest is called for every Sync and FunctionCall: the link may end at its
// ReadyForQuery. A simple Query drops the statement (drop).
func (u *unnamedStmt) endRequest() { u.live = false }

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
	if u.clear.exec != nil {
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
