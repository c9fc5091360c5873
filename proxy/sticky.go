package proxy

import (
	"strings"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Session-scoped work in transaction mode. When a client does something whose effect
// outlives its transaction — a session advisory lock, LISTEN, SQL PREPARE, a WITH HOLD
// cursor, a temporary object, set_config of a name pgmux cannot read from the text,
// SET ROLE, LOAD — it keeps (pins) its server past the end of the transaction. A pinned
// server leaves its pool's size accounting and counts against the database's direct
// budget (direct_pool_size), so sticky clients never starve transaction pooling. After
// a request that may have undone that state (unlocks, UNLISTEN, DISCARD, RESET,
// DEALLOCATE, CLOSE, DROP, COMMIT, ROLLBACK) pgmux asks the server whether any session
// state is left, and when none is, the client goes back to transaction pooling.

// pinReason is a set of reasons a client keeps its server.
type pinReason uint16

const (
	pinAdvisory pinReason = 1 << iota
	pinListen
	pinPrepare
	pinHold
	pinTemp
	pinSet
	pinRole
	pinLoad
	pinSession // asked for a real session (pgmux.pool_mode=session)
)

var pinNames = [...]string{"advisory_lock", "listen", "prepare", "with_hold_cursor",
	"temp_object", "set", "role", "load", "session"}

func (r pinReason) String() string {
	if r == 0 {
		return ""
	}
	var parts []string
	for i, name := range pinNames {
		if r&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ",")
}

// permanent reasons are never undone by the client: only a disconnect ends them.
const permanent = pinLoad | pinSession

// verdict is what a request's text does to session state.
type verdict struct {
	pin        pinReason
	release    bool      // it may release pinned state
	begin, end bool      // it begins / ends a transaction block
	set        *setTouch // the settings it names (settings.go); nil for none
}

// classify scans SQL text for statements that create or may release session state, and
// for the settings they name: every statement of a multi-statement text, and the
// statements inside its DO blocks.
//
// A DO block's statements may not all run (a condition, a loop, an exception handler, a
// failed block), so a block that pins also asks for the state check afterwards: the
// server then tells whether the state is there, and a client whose block made none goes
// back to transaction pooling at once.
func (s *Session) classify(sql string) verdict {
	return classifyLead(sql, s.lead(sql))
}

// classifyText is classify without a session, for interesting =
// sqlscan.MaybeInteresting(sql): no I/O and no state, so table tests and FuzzClassify
// drive it with text alone.
func classifyText(sql string, interesting bool) verdict {
	l := sqlscan.LeadOf(sql)
	l.Interesting = interesting
	return classifyLead(sql, l)
}

// classifyLead is classify for l = sqlscan.LeadOf(sql) (but for l.Interesting, as in
// classifyText).
func classifyLead(sql string, l sqlscan.Lead) (v verdict) {
	if !l.Interesting {
		// DROP is no kind of its own, but dropping a temporary object may end a pin.
		if l.Keyword == sqlscan.KwDrop {
			v.release = true
			return v
		}
		// A DROP after another statement of the text: the full scan finds it. A text whose
		// every ';' is trailing (pgbench's, most drivers') holds no other statement.
		if !l.More || !containsFold(sql, "drop") {
			return v
		}
	}
	hasDo := false
	for st := range sqlscan.All(sqlscan.Scan(sql)) {
		hasDo = hasDo || st.Do != nil
		if st.AdvisoryLock > 0 {
			v.pin |= pinAdvisory
		}
		if st.AdvisoryUnlock > 0 || st.AdvisoryUnlockAll {
			v.release = true
		}
		switch st.Kind {
		case sqlscan.KindListen:
			v.pin |= pinListen
		case sqlscan.KindPrepare:
			v.pin |= pinPrepare
		case sqlscan.KindDeclareHold:
			v.pin |= pinHold
		case sqlscan.KindCreateTemp:
			v.pin |= pinTemp
		case sqlscan.KindSetRole:
			v.pin |= pinRole
		case sqlscan.KindLoad:
			v.pin |= pinLoad
		case sqlscan.KindBegin:
			v.begin = true
		case sqlscan.KindCommit, sqlscan.KindRollback:
			v.end, v.release = true, true
		case sqlscan.KindReset, sqlscan.KindResetAll, sqlscan.KindDiscardAll, sqlscan.KindDiscard,
			sqlscan.KindUnlisten, sqlscan.KindUnlistenAll, sqlscan.KindDeallocate,
			sqlscan.KindDeallocateAll, sqlscan.KindClose:
			v.release = true
		case sqlscan.KindOther:
			if sqlscan.LeadKeyword(st.Text) == sqlscan.KwDrop {
				v.release = true
			}
		}
		var pin pinReason
		v.set, pin = setTouchOf(v.set, st)
		v.pin |= pin
	}
	if hasDo && v.pin != 0 {
		v.release = true
	}
	return v
}

// stickyNeed looks at a client message before it is forwarded and reports what session
// state it creates or may release, and notes the settings it names (in every pool mode:
// RESET must return to the startup value in session mode too). It does not consume the
// message.
func (s *Session) stickyNeed(typ byte, n int) (pinReason, bool, error) {
	if st := s.set.Load(); st != nil {
		st.req, st.reqBegin, st.reqEnd = nil, false, false
	}
	var v verdict
	switch typ {
	case 'Q':
		if n > maxInspect {
			break
		}
		m, err := s.rd.Peek(n)
		if err != nil {
			return 0, false, err
		}
		text, _, err := wire.CString(wire.Body(m))
		if err != nil || len(text) == 0 {
			break
		}
		q := unsafe.String(&text[0], len(text))
		v = s.classify(q)
		s.noteRequest(v.set, v.begin, v.end)
		v.pin, v.release = s.sqlNeed(q, v.pin, v.release)
		if v.release && s.listening && s.mode != config.PoolModeSession {
			s.unlistenShared(q)
		}
	case 'B':
		m, err := s.rd.Peek(n)
		if err != nil {
			return 0, false, err
		}
		_, rest, err := wire.CString(wire.Body(m))
		if err != nil {
			break
		}
		name, _, err := wire.CString(rest)
		if err != nil {
			break
		}
		if def := s.lookupStmt(name); def != nil {
			v.pin, v.release = def.pin, def.release
			s.noteRequest(def.set, false, false)
		} else if len(name) == 0 {
			v.pin, v.release = s.unnamedPin, s.unnamedRelease
			if st := s.set.Load(); st != nil {
				st.req = st.unnamed
			}
		}
	case 'P':
		m, err := s.rd.Peek(n)
		if err != nil {
			return 0, false, err
		}
		name, rest, err := wire.CString(wire.Body(m))
		if err != nil || len(name) != 0 {
			break // named: classified when registered, pinned at Bind
		}
		query, _, err := wire.CString(rest)
		if err != nil || len(query) == 0 {
			break
		}
		u := s.classify(unsafe.String(&query[0], len(query)))
		if u.pin == 0 && !u.release && u.set == nil {
			u = s.execNeed(unsafe.String(&query[0], len(query)), u)
		}
		if u.pin&pinPrepare != 0 && s.prepOf(unsafe.String(&query[0], len(query))) != nil {
			u.pin &^= pinPrepare // the client's statement, not the server's (sqlprep_ext.go)
		}
		s.unnamedPin, s.unnamedRelease = u.pin, u.release
		if u.set != nil || s.set.Load() != nil {
			s.settingsState().unnamed = u.set
		}
	}
	switch {
	case s.mode == config.PoolModeSession:
		return 0, false, nil
	case s.forceSession:
		return pinSession, false, nil
	}
	return v.pin, v.release, nil
}

// reserveDirect takes a direct-budget slot for a client about to pin, waiting up to
// query_wait_timeout.
func (s *Session) reserveDirect(reason pinReason) error {
	s.mu.Lock()
	held := s.holdsDirect
	s.mu.Unlock()
	if held {
		return nil
	}
	if !s.entry.direct.tryAcquire() {
		if err := s.waitDirect(reason); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.holdsDirect = true
	s.mu.Unlock()
	return nil
}

// waitDirect queues for a direct slot up to query_wait_timeout; the client counts as
// waiting meanwhile.
func (s *Session) waitDirect(reason pinReason) error {
	s.warnDirectWait(reason)
	s.mu.Lock()
	s.waitKind, s.waitSince = waitDirect, time.Now().UnixNano()
	s.mu.Unlock()
	ctx, cancel := waitContext(s.srv.Config())
	defer cancel()
	err := s.entry.direct.acquire(ctx)
	s.mu.Lock()
	s.waitKind = waitNone
	s.mu.Unlock()
	if err != nil {
		n, waiting, max := s.entry.direct.used()
		return pgerr.New(pgerr.TooManyConnections,
			"no direct connection free for session state (%s) on database %q: all %d are pinned by other clients", reason, s.dbName, max).
			WithDetail("Waited query_wait_timeout; %d in use, %d clients waiting.", n, waiting).
			WithHint("Raise direct_pool_size, or release session state sooner (pg_advisory_unlock, UNLISTEN, DISCARD ALL).")
	}
	return nil
}

// pin keeps the linked server c for this client; the direct slot is already held.
func (s *Session) pin(c *pool.Conn, reason pinReason) {
	s.mu.Lock()
	first := s.pinned == 0
	s.pinned |= reason
	s.pinSeq++ // a state check already in flight no longer speaks for this pin
	s.mu.Unlock()
	if first {
		s.entry.pool.Detach(c)
		s.log().Debug("client pinned to its server", zapReason(reason))
	}
}

// unpinLocked ends pinning after the server reported no session state left; s.mu is held.
func (s *Session) unpinLocked(c *pool.Conn, seq uint32) bool {
	if s.pinned == 0 || s.pinned&permanent != 0 || seq != s.pinSeq {
		return false
	}
	if !s.entry.pool.Reattach(c) {
		return false // the pool is closed: keep it pinned until the client leaves
	}
	s.pinned = 0
	s.holdsDirect = false
	s.entry.direct.release()
	return true
}

// stateCheckSQL counts the session state left on a server, apart from settings pgmux
// itself carries.
func (s *Session) stateCheckSQL() string {
	var b strings.Builder
	b.WriteString("SELECT (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())" +
		" + (SELECT count(*) FROM pg_catalog.pg_listening_channels())" +
		" + (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())" +
		" + (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)" +
		" + (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql AND name NOT LIKE 'pgmux\\_%')" +
		" + (SELECT count(*) FROM pg_catalog.pg_settings WHERE source = 'session' AND lower(name) NOT IN ('")
	first := true
	add := func(name string) {
		if !first {
			b.WriteString("', '")
		}
		first = false
		b.WriteString(strings.ToLower(strings.ReplaceAll(name, "'", "''")))
	}
	for _, name := range [...]string{"transaction_isolation", "transaction_read_only", "transaction_deferrable"} {
		add(name)
	}
	s.mu.Lock()
	if st := s.set.Load(); st != nil {
		for _, p := range st.start {
			add(p.Name)
		}
		for _, p := range st.own {
			add(p.Name)
		}
		for _, t := range st.touched {
			add(t.name)
		}
	}
	s.mu.Unlock()
	b.WriteString("'))")
	return b.String()
}

// sendStateCheck follows the client's request with the hidden state check.
func (s *Session) sendStateCheck(c *pool.Conn) error {
	s.mu.Lock()
	s.q.push(expect{Kind: 'Q', Hide: true, Check: true, Seq: s.pinSeq})
	s.mu.Unlock()
	if err := c.Wr.Write(wire.Query(s.scratch[:0], s.stateCheckSQL())); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// raiseViaServer answers a client message that cannot be served with an error that the
// server raises in its place, so it reaches the client in order with the rest of the
// linked server's answers.
func (s *Session) raiseViaServer(c *pool.Conn, typ byte, n int, pe *pgerr.Error) error {
	if err := s.rd.Skip(n); err != nil {
		return err
	}
	msg := strings.ReplaceAll(pe.Message, "'", "''")
	hint := strings.ReplaceAll(pe.Hint, "'", "''")
	do := "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '" + pe.Code + "', MESSAGE = '" + msg +
		"', HINT = '" + hint + "'; END$pgmux$"
	if typ == 'Q' {
		if l := s.linkLog(c); l != nil {
			l.skip('Q')
		}
		// The Query was accounted when it was linked: write the replacement only.
		if err := c.Wr.Write(wire.Query(nil, do)); err != nil {
			return &wire.WriteError{Err: err}
		}
		return nil
	}
	s.unnamed.live = false // the server's unnamed statement is now the DO block
	b := (&stmtDef{query: do, types: []byte{0, 0}}).parseMsg(nil, "")
	b, st := wire.Begin(b, 'B')
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // portal "", statement "", no formats/params/result formats
	b = wire.Finish(b, st)
	b, st = wire.Begin(b, 'E')
	b = append(b, 0, 0, 0, 0, 0)
	b = wire.Finish(b, st)
	s.mu.Lock()
	s.Unsynced = true
	s.mu.Unlock()
	return s.send(c, b, expect{Kind: 'P', Hide: true}, expect{Kind: 'B', Hide: true}, expect{Kind: 'E'})
}

func zapReason(r pinReason) zap.Field { return zap.Stringer("reason", r) }
