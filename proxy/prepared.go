package proxy

import (
	"encoding/hex"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// Named prepared statements in transaction and statement mode.
//
// A client's statement names mean nothing to whichever server it gets next, so pgmux
// keeps each client's statements (name -> query and parameter types) and prepares them on
// servers under its own names, derived from the query text and types: every client that
// prepares the same SQL shares one server statement. Bind and Describe of a statement the
// current server lacks get a hidden Parse in front. A client's Parse of a statement the
// server already has becomes a Close and Parse of an empty throwaway statement, so the
// client still gets its ParseComplete from the server, in order. A client's Close of a
// statement becomes a Close of the throwaway name: the shared server statement stays.
// In "unnamed" mode every named statement is sent as the unnamed one, re-parsed before
// each use, and no server state is kept.

// noopStmt is the throwaway statement name used to produce ParseComplete and CloseComplete.
const noopStmt = link.NoopStmt

// stmtDef is one client statement.
//
// Owners: the session goroutine that makes it fills its fields before it registers the
// statement (keep) or sends anything naming it, and after that alone writes born. Other
// goroutines only read the rest: the server's reader, through the expects that carry it,
// and later lessees of a server whose statement cache holds it (link.StmtCache's nodes).
// failed, checked and desc are atomics set by the server's reader and read by the session.
type stmtDef struct {
	pin     pinReason // session state its execution creates
	release bool      // its execution may release session state
	set     *setTouch // the settings it names (settings.go)
	server  string    // pgmux's name for it on servers
	name    string    // the client's name for it (keep)
	key     uint64    // 64 bits of the name's hash (stmtKey): the statement cache's index
	query   string
	types   []byte // the Parse message's parameter type section, verbatim
	// sqlTypes is set for a statement made by SQL PREPARE: its parameter type list as
	// written, with the parentheses ("" when it has none); servers get it by PREPARE.
	sqlTypes string
	sql      bool
	// own: a statement the client made with SQL PREPARE in unnamed mode, which went to
	// the server as written (the client is pinned to it): the server has it under the
	// client's own name, and the client's Bind, Describe and Close of it go as written.
	// It is kept so that a Parse of its name gets 42P05, as in PostgreSQL.
	own   bool
	epoch uint64 // the statement epoch when the client prepared it (ddl.go)
	// clear is what executing it does to the client's statement names (stmtclear_ext.go).
	clear clearOp
	// born is the number of the last DISCARD ALL or DEALLOCATE ALL the client sent
	// before registering it (stmtclear.go); session goroutine only.
	born uint32
	// failed is set by the server's reader when the client's Parse (or PREPARE) of it
	// failed or was skipped: the client has no such statement, as in PostgreSQL.
	failed atomic.Bool
	// checked is set by the server's reader when a server accepted its Parse; a Parse
	// pgmux answered itself (deferred.go) is checked at the statement's first use, and if
	// that fails the statement was never the client's either.
	checked atomic.Bool
	// desc is what a server answered the client's Describe of it, set once by the
	// server's reader (failedtx.go): nil until then.
	desc atomic.Pointer[stmtDesc]
	// answered: pgmux answered the client's Parse of it itself (deferred.go); session
	// goroutine only.
	answered bool
}

var stmtSeed = maphash.MakeSeed()
var stmtSeed2 = maphash.MakeSeed()

// newStmtDef names a statement by a 128-bit hash of its text, its parameter types, the
// client's search_path when it prepared it (scope, stmtScope) and the statement epoch
// then (ddl.go). An empty scope adds nothing to the hash, so that stmtKey names the same
// statement.
func newStmtDef(query string, types []byte, scope string, epoch uint64) *stmtDef {
	var h1, h2 maphash.Hash
	h1.SetSeed(stmtSeed)
	h2.SetSeed(stmtSeed2)
	var e [8]byte
	for i := range e {
		e[i] = byte(epoch >> (8 * i))
	}
	for _, h := range []*maphash.Hash{&h1, &h2} {
		h.WriteString(query)
		h.WriteByte(0)
		h.Write(types)
		h.Write(e[:])
		if scope != "" {
			h.WriteString("\x00search_path\x00")
			h.WriteString(scope)
		}
	}
	var sum [16]byte
	a, b := h1.Sum64(), h2.Sum64()
	for i := 0; i < 8; i++ {
		sum[i], sum[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return &stmtDef{server: "pgmux_" + hex.EncodeToString(sum[:]), key: a, query: query, types: types, epoch: epoch}
}

// stmtScope is what besides its text decides what a client's statement means: its
// search_path as pgmux knows it (the value it set, else its startup value), "" when it
// named none. Statements of clients with different search_paths are prepared apart on a
// server: one shared between them was analysed again at each switch (PostgreSQL re-parses
// a prepared statement when search_path changes), and where that changed its result type
// (schema-per-tenant tables of one name) each client's Bind failed with 0A000 "cached
// plan must not change result type" after the other's, every time.
func (s *Session) stmtScope() string {
	st := s.set.Load()
	if st == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := st.Own.Get("search_path"); ok {
		return v
	}
	v, _ := st.Start.Get("search_path")
	return v
}

// parseMsg appends a Parse of the statement under name.
func (d *stmtDef) parseMsg(dst []byte, name string) []byte {
	return link.AppendParse(dst, name, d.query, d.types)
}

// serverState is what pgmux keeps per server connection (pool.Conn.Tracker, reached only
// through linkOf and stateOf). It outlives leases: statements prepared and settings made
// on the server stay for the next client, until the pool's reset query wipes them
// (ServerReset).
//
// Owner: the session that holds the connection's lease, on its two goroutines: the
// session goroutine sends requests, the connection's reader (Session.Pump) reads the
// answers. set, stmts and seen are used under that session's mu; skipped is written by
// the reader in skipToSync and read by planRetry, both under mu and wmu; wmu orders
// writes to the connection and guards log. Between leases only the pool touches it,
// through ServerReset on the connection's reader goroutine; the pool hands the
// connection on under its own locks, which order one lessee's last use before the
// reset and the reset before the next lessee's first use.
type serverState struct {
	set   pool.Params // settings pgmux knows the server has beyond its defaults (settings.go)
	stmts *stmtCache
	// wmu serialises writes to the connection between the linked session's relay loop
	// and a retry sent by the connection's reader (retry.go); log is what the session
	// sent for its current request. Both are used only in prepCache mode.
	wmu     sync.Mutex
	log     reqLog
	skipped []expect     // the requests skipped after a 0A000 error (skipToSync)
	seen    *link.Sketch // unnamed statements parsed here lately (unnamed.go); made on first use
	// left: client statement names a Query with a COPY left here, closed in front of the
	// next message that reaches the server, whoever leases it (sqlmulti.go closeLeft).
	// The lessee's session goroutine alone uses it (leases are ordered by the pool).
	left []string
	// ring: the buffer of the linked client's response queue, lent to each client for
	// its link (Session.link) and given back at release (settleAt). A client queues and
	// answers its requests there, in memory the previous transactions on this server
	// kept in cache; a buffer of each client's own was one more cold kilobyte a
	// transaction when hundreds of clients take turns (issue 14: an eighth of the cache
	// misses of pgbench -M extended at 500 clients, callgrind's simulation). The lessee
	// alone touches it, under its s.mu.
	ring []expect
}

// ServerReset updates what pgmux knows of the server after the pool's reset query
// (server_reset_query, DISCARD ALL by default) has run there; the pool calls it between
// leases (pool.Tracker). The statements pgmux prepared are gone when the query drops
// them all (DISCARD ALL, DEALLOCATE ALL), and the settings it made when the query resets
// them all (DISCARD ALL, RESET ALL). A setting the query sets or resets otherwise is
// marked unknown, so the next client sets or resets it. What the query leaves alone
// stays known: forgetting a statement the server keeps would make pgmux prepare it
// again (42P05), and forgetting a setting would leave it to the next client.
func (x *serverState) ServerReset(query string) {
	for _, st := range sqlscan.Scan(query) {
		if st.Kind == sqlscan.KindDiscardAll || st.Kind == sqlscan.KindDeallocateAll {
			x.stmts.clear()
			break
		}
	}
	t := link.ClassifyText(query, true).Set
	if t == nil {
		return
	}
	if t.All {
		x.set = nil
	}
	for _, op := range t.Ops {
		x.set.Set(op.Name, unknownValue)
	}
}

// linkOf returns what pgmux keeps for server connection c, or nil before stateOf has
// made it. It and stateOf are the only code that touches pool.Conn.Tracker
// (TestTrackerOnlyThroughLinkOf checks it), so the connection's state has one type and
// its one type assertion, a comparison of the interface's type word, is here.
func linkOf(c *pool.Conn) *serverState {
	x, _ := c.Tracker.(*serverState)
	return x
}

// stateOf returns c's state, creating it on first use and registering its statement
// cache with the pool's figures (stats, which may be nil). It runs on the goroutine
// that holds c's lease, before the session links c under s.mu.
func stateOf(c *pool.Conn, maxStmts int, stats *prepStats) *serverState {
	if x := linkOf(c); x != nil {
		if x.stmts.Max() != maxStmts {
			x.stmts.SetMax(maxStmts)
		}
		return x
	}
	x := &serverState{stmts: newStmtCache(maxStmts)}
	c.Tracker = x
	stats.register(c, x.stmts)
	return x
}

// stateOf is stateOf for the session's pool and settings.
func (s *Session) stateOf(c *pool.Conn) *serverState {
	var stats *prepStats
	if s.entry != nil {
		stats = s.entry.prep
	}
	return stateOf(c, int(s.maxStmts), stats)
}

// prepMode says how the current link treats named statements.
type prepMode uint8

const (
	prepPass    prepMode = iota // session mode or max_prepared_statements=0: forward as is
	prepCache                   // rename and prepare on demand, cached per server
	prepUnnamed                 // send as the unnamed statement
)

// rewrite forwards one Parse, Bind, Describe or Close, translating statement names. It
// is called with the message's header peeked and returns once the bytes are queued to
// the server.
func (s *Session) rewrite(c *pool.Conn, typ byte, n int) error {
	m, err := s.rd.Message(n)
	if err != nil {
		return err
	}
	body := wire.Body(m)
	switch typ {
	case 'P':
		return s.rewriteParse(c, m, body)
	case 'B':
		return s.rewriteBind(c, m, body)
	case 'D':
		return s.rewriteDescribeClose(c, 'D', m, body)
	default:
		return s.rewriteDescribeClose(c, 'C', m, body)
	}
}

// send queues expectations and bytes in order: expects are pushed under s.mu before the
// bytes can reach the server.
func (s *Session) send(c *pool.Conn, b []byte, es ...expect) error {
	s.logSent(c, b, es)
	for i := range es { // by index: an expect is 128 bytes
		if es[i].Kind == 'P' && !es[i].Noop {
			s.ops.serverParses.Add(1)
		}
	}
	s.mu.Lock()
	for i := range es {
		s.q.push(&es[i])
	}
	s.mu.Unlock()
	if err := c.Wr.Write(b); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

func (s *Session) rewriteParse(c *pool.Conn, m, body []byte) error {
	f := s.fieldsOf(body, s.rd.Seq())
	if !f.OK() {
		return s.send(c, m, expect{Kind: 'P'})
	}
	name, query, types := f.First(body), f.Second(body), f.Rest(body)
	rest := body[len(name)+1:]
	if len(query) > 0 {
		q := unsafe.String(&query[0], len(query))
		l := s.lead(q)
		s.noteDDL(q, l)
		s.freeDatabase(q, l)
	}
	if len(name) == 0 {
		return s.parseUnnamed(c, m, rest, query, types)
	}
	if def := s.lookupStmt(name); def != nil {
		if def.unsure() {
			s.awaitProbe(c, def)
			def = s.lookupStmt(name) // gone if the server refused it
		}
		if def != nil {
			return s.parseDuplicate(c, name, rest)
		}
	}
	def := s.register(string(name), string(query), types)
	return s.parseOn(c, def)
}

// register records a client statement.
func (s *Session) register(name, query string, types []byte) *stmtDef {
	text, exec := s.execOf(query)
	prep := s.prepOf(query)
	if prep != nil {
		text = prep.text()
	}
	def := newStmtDef(text, append([]byte(nil), types...), s.stmtScope(), s.srv.stmtEpoch.Load())
	if s.mode != config.PoolModeSession {
		v := s.classify(query)
		def.pin, def.release, def.set = v.Pin, v.Release, v.Set
	}
	if s.prep != prepPass {
		def.clear = s.clearOf(query)
	}
	if prep != nil {
		def.pin &^= pinPrepare // the client's statement, made when executed (sqlprep_ext.go)
		def.clear.prep = prep
	}
	if exec != nil {
		withExec(def, exec)
	}
	s.keep(name, def)
	return def
}

// keep records def as the client's statement name.
func (s *Session) keep(name string, def *stmtDef) {
	def.born = s.clears.sent
	s.keepAs(name, def)
}

// keepAs records def, whose born is set, as the client's statement name.
func (s *Session) keepAs(name string, def *stmtDef) {
	if s.stmts == nil {
		s.stmts = make(map[string]*stmtDef)
	}
	def.name = name
	s.stmts[name] = def
}

// lookupStmt returns the client's statement of that name, or nil when it has none: never
// made, closed, cleared by DISCARD ALL or DEALLOCATE ALL, or its Parse failed on the
// server (then it is dropped here). A clearing Query still unanswered is waited for.
func (s *Session) lookupStmt(name []byte) *stmtDef {
	if s.q.clears.Load() > 0 || s.clears.done.Load() != s.clears.applied || s.clears.drops.Load() != s.clears.dropsApplied {
		s.applyClears()
	}
	def, ok := s.stmts[string(name)]
	if !ok {
		return nil
	}
	if def.failed.Load() {
		delete(s.stmts, string(name))
		return nil
	}
	return def
}

// parseDuplicate answers a Parse of a name the client already has with PostgreSQL's own
// error, in its place in the request: the server parses the client's query under
// pgmux's throwaway name, which it has just made, and so reports the query's own errors
// first, then 42P05 "prepared statement ... already exists", whose name pgmux turns
// into the client's. The request's remaining messages are skipped by the server.
func (s *Session) parseDuplicate(c *pool.Conn, name, rest []byte) error {
	b := link.AppendNoop(s.scratch[:0], noopStmt)
	b = link.AppendParseAs(b, noopStmt, rest)
	err := s.send(c, b, expect{Kind: 'C', Hide: true}, expect{Kind: 'P', Hide: true},
		expect{Kind: 'P', Fix: &errFix{from: noopStmt, to: string(name)}})
	s.keepScratch(b)
	return err
}

// parseOn sends what answers a client's Parse of def on server c with a ParseComplete
// from the server, preparing it there if it lacks it. When that Parse fails or is
// skipped, def is marked failed: the client has no statement of that name.
func (s *Session) parseOn(c *pool.Conn, def *stmtDef) error {
	if s.prep == prepUnnamed {
		s.unnamed.live = false // the server's unnamed statement is now this one
		return s.send(c, def.parseMsg(s.scratch[:0], ""), expect{Kind: 'P', Reg: def})
	}
	b, pre := s.ensureTarget(c, def, s.scratch[:0])
	s.mu.Lock()
	st := s.stateOf(c)
	present, stale := st.stmts.lookup(def.server, s.Reqs, nil)
	// The transaction is failed, or may be by the time the server reads this Parse (a
	// request is still unanswered): PostgreSQL answers a Parse there with 25P02, unless
	// it ends the transaction (ROLLBACK...), which the empty Parse answers as it would.
	mayFail := s.TxStatus == 'E' || s.Pending > 0
	s.mu.Unlock()
	if present && !stale {
		if mayFail && !sqlscan.TxExit(def.query) {
			// Not the empty Parse, which PostgreSQL accepts even in a failed
			// transaction: a statement it checks the transaction for, so the client
			// gets 25P02 where it would and the name is not kept (its Reg fails).
			b = link.AppendClose(b, 'S', noopStmt)
			b = link.AppendStmtParse(b, noopStmt, stubQuery)
		} else {
			b = link.AppendNoop(b, noopStmt)
		}
		return s.send(c, b, append(pre, expect{Kind: 'C', Hide: true}, expect{Kind: 'P', Reg: def, Noop: true})...)
	}
	b, es := s.prepareOn(c, st, def, stale, b, false)
	es[len(es)-1].Hide = false // the client asked for this Parse: it sees ParseComplete
	es[len(es)-1].Reg = def
	if p := def.clear.prep; p != nil {
		es[len(es)-1].Fix = p.fix() // its syntax errors, at the client's positions
	}
	return s.send(c, b, append(pre, es...)...)
}

// prepareOn appends what prepares def on server c: a Close of a stale copy, Closes of the
// statements evicted to make room, and the Parse, with their expectations.
func (s *Session) prepareOn(c *pool.Conn, st *serverState, def *stmtDef, stale bool, b []byte, hide bool) ([]byte, []expect) {
	var owner *stmtDef
	if !hide {
		owner = def // the client's own Parse of it
	}
	s.mu.Lock()
	p := st.stmts.prepare(def.server, stale, s.Reqs, owner, def)
	s.mu.Unlock()
	b, es := closesFor(b, nil, def.server, p)
	gen := p.Gen
	if def.sql {
		b = def.prepareSQL(b)
		s.unnamed.live = false // the server's unnamed statement is now the PREPARE
		return b, append(es, expect{Kind: 'P', Hide: true}, expect{Kind: 'B', Hide: true},
			expect{Kind: 'E', Hide: hide, Stmt: def.server, Prep: gen})
	}
	b = def.parseMsg(b, def.server)
	es = append(es, expect{Kind: 'P', Hide: hide, Stmt: def.server, Prep: gen})
	return b, es
}

// ensure prepares def on c when c lacks it, returning the bytes and expectations to send
// before the message that uses it, and the statement name to use. The cache counts the
// use unless def is the client's unnamed statement (counted at its Parse).
func (s *Session) ensure(c *pool.Conn, def *stmtDef, b []byte) ([]byte, []expect, string) {
	if s.prep == prepUnnamed {
		s.unnamed.live = false // the client's own unnamed statement is replaced
		return def.parseMsg(b, ""), []expect{{Kind: 'P', Hide: true, Reg: def}}, ""
	}
	b, pre := s.ensureTarget(c, def, b)
	s.mu.Lock()
	st := s.stateOf(c)
	var present, stale bool
	if def == s.unnamed.def {
		present, stale = st.stmts.peek(def.server, s.Reqs, def)
	} else {
		present, stale = st.stmts.lookup(def.server, s.Reqs, def)
	}
	s.mu.Unlock()
	if present && !stale {
		return b, pre, def.server
	}
	b, es := s.prepareOn(c, st, def, stale, b, true)
	es[len(es)-1].Reg = def
	return b, append(pre, es...), def.server
}

func (s *Session) rewriteBind(c *pool.Conn, m, body []byte) error {
	f := s.fieldsOf(body, s.rd.Seq())
	if !f.OK() {
		return s.send(c, m, expect{Kind: 'B'})
	}
	portal, name, tail := f.First(body), f.Second(body), f.Rest(body)
	var def *stmtDef
	if len(name) == 0 {
		if def = s.unnamedDef(c); def == nil {
			s.notePortal(portal, s.unnamed.op())
			return s.sendUnnamed(c, m, 'B')
		}
	} else if def = s.lookupStmt(name); def == nil || def.own {
		// Unknown to pgmux: the server, which has no statement of the client's name,
		// answers PostgreSQL's 26000 "prepared statement ... does not exist"; or the
		// server has it under the client's name (own).
		s.notePortal(portal, clearOp{})
		return s.send(c, m, expect{Kind: 'B'})
	}
	def = s.execCurrent(name, def)
	s.notePortal(portal, def.clear)
	b, es, done := s.failedBind(c, portal, name, def, tail)
	if done {
		err := s.send(c, b, es...)
		s.keepScratch(b)
		return err
	}
	b, pre, server := s.ensure(c, def, b)
	es = append(es, pre...)
	start := len(b)
	b = link.AppendBindAs(b, portal, server, tail)
	err := s.sendWith(c, b, es, expect{Kind: 'B', Stmt: server, Def: def, Off: int32(start), Fresh: s.parsedHere(def), Anon: len(name) == 0})
	s.keepScratch(b)
	return err
}

// sendWith sends b expecting es and then last. With nothing before last (the statement was
// on the server already: the steady state of a prepared statement) no slice is built.
func (s *Session) sendWith(c *pool.Conn, b []byte, es []expect, last expect) error {
	if len(es) == 0 {
		return s.send(c, b, last)
	}
	return s.send(c, b, append(es, last)...)
}

// rewriteDescribeClose handles Describe and Close, which share a layout: kind byte, name.
func (s *Session) rewriteDescribeClose(c *pool.Conn, typ byte, m, body []byte) error {
	kind, name, ok := link.TargetFields(body)
	if !ok || kind != 'S' {
		return s.send(c, m, expect{Kind: typ})
	}
	var def *stmtDef
	if len(name) == 0 {
		if typ == 'C' {
			return s.closeUnnamed(c, m)
		}
		if def = s.unnamedDef(c); def == nil {
			return s.sendUnnamed(c, m, 'D')
		}
	} else if typ == 'C' {
		return s.closeNamed(c, m, name)
	} else if def = s.lookupStmt(name); def == nil || def.own {
		return s.send(c, m, expect{Kind: 'D'})
	}
	def = s.execCurrent(name, def)
	if b, es, ok := s.failedDescribe(c, def); ok {
		err := s.send(c, b, es...)
		s.keepScratch(b)
		return err
	}
	b, es, server := s.ensure(c, def, s.scratch[:0])
	start := len(b)
	b = link.AppendDescribeStmt(b, server)
	return s.sendWith(c, b, es, expect{Kind: 'D', Stmt: server, Def: def, Off: int32(start), Fresh: s.parsedHere(def), Anon: len(name) == 0})
}

// closeNamed sends a client's Close m of its statement name as written: the server's
// statement under pgmux's name stays for other clients, and what the server has under
// the client's name is the client's alone (an own statement, a PREPARE pgmux did not
// record, or a copy of the statement a Query stopped by an error left: sqlmulti.go
// closedAfter), which PostgreSQL would close too. The client's name is
// dropped when the server's CloseComplete arrives (closeAnswered), through the hand-off
// DEALLOCATE of a name uses (stmtclear.go), not when the Close is sent: after an error
// earlier in the request PostgreSQL skips the Close, and the statement stays the
// client's. Until that answer, a lookup of a name waits for it (applyClears), so a Parse
// of the name behind the Close is no duplicate.
func (s *Session) closeNamed(c *pool.Conn, m, name []byte) error {
	b := append(s.scratch[:0], m...)
	def := s.lookupStmt(name)
	s.mu.Lock()
	skipped := s.ErrSkip // the server ignores it until the client's Sync
	if def != nil && !skipped {
		s.q.wakeChan()
	}
	s.mu.Unlock()
	if def == nil || skipped {
		return s.send(c, b, expect{Kind: 'C'})
	}
	err := s.send(c, b, expect{Kind: 'C', Clear: closeClear, Drops: []clearDrop{{name: string(name), def: def}}})
	s.flushNow = true // a lookup may wait for its answer
	return err
}

// closeClear is the Clear mark of a client's Close of a statement name (closeNamed): it
// counts among the clearing requests a lookup waits for, but is no DISCARD ALL or
// DEALLOCATE ALL (whose CommandComplete publishes their number, readClear: a Close is
// answered with CloseComplete) and takes no number from stmtClears.sent, so a session
// that closed a statement can still be settled.
const closeClear = ^uint32(0)

// closeAnswered hands the drop of a client's Close to the session goroutine when the
// server's CloseComplete for it arrives (closeNamed). s.mu is held.
func (s *Session) closeAnswered() {
	h := s.q.ring.Front()
	if h == nil || h.Kind != 'C' || len(h.Drops) == 0 {
		return
	}
	s.clears.dropped = append(s.clears.dropped, h.Drops[0])
	s.clears.drops.Add(1)
}

// forgetSkipped undoes what pgmux recorded about a server's statements when it sent a
// request the server then skipped (an error earlier in the same request): a skipped Parse
// created nothing, and a skipped Close left its statement in place. Requests can be sent
// after the error has already been relayed, so this runs both when the error arrives and
// when the ReadyForQuery retires what was left unanswered. s.mu is held.
func forgetSkipped(st *serverState, e expect) {
	if e.Reg != nil && (e.Kind == 'P' || e.Kind == 'E') && !e.Hide {
		// The client's Parse did not happen, or its Execute of a SQL PREPARE
		// (sqlprep_ext.go).
		e.Reg.failed.Store(true)
	}
	if st == nil || e.Stmt == "" {
		return
	}
	switch {
	case e.Kind == 'P', e.Kind == 'E' && e.Hide, e.Kind == 'Q' && e.Hide && e.Prep != 0:
		st.stmts.forget(e.Stmt, e.Prep)
	case e.Kind == 'C' && e.Hide:
		st.stmts.restore(e.Stmt)
		if e.Stale {
			// Still the stale copy: the next use closes and prepares it again.
			st.stmts.MarkStale(e.Stmt)
		}
	}
}

// writeScratch writes b, built in s.scratch, to the server and keeps the buffer.
func (s *Session) writeScratch(c *pool.Conn, b []byte) error {
	err := c.Wr.Write(b)
	s.keepScratch(b)
	if err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// keepScratch keeps a grown scratch buffer for reuse unless it grew very large.
func (s *Session) keepScratch(b []byte) {
	if cap(b) <= 64<<10 && cap(b) > cap(s.scratch) {
		s.scratch = b[:0]
	}
}
