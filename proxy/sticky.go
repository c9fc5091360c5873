package proxy

import (
	"errors"
	"strings"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
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

// The reasons a client keeps its server, and what a request's text does to session
// state, are package link's (link/pin.go): decided from the text alone.
type (
	pinReason = link.Pin
	verdict   = link.Verdict
)

const (
	pinAdvisory = link.PinAdvisory
	pinListen   = link.PinListen
	pinPrepare  = link.PinPrepare
	pinHold     = link.PinHold
	pinTemp     = link.PinTemp
	pinSet      = link.PinSet
	pinRole     = link.PinRole
	pinLoad     = link.PinLoad
	pinSession  = link.PinSession
	permanent   = link.Permanent
)

var pinNames = link.PinNames

// classify scans SQL text for statements that create or may release session state, and
// for the settings they name: every statement of a multi-statement text, and the
// statements inside its DO blocks.
//
// A DO block's statements may not all run (a condition, a loop, an exception handler, a
// failed block), so a block that pins also asks for the state check afterwards: the
// server then tells whether the state is there, and a client whose block made none goes
// back to transaction pooling at once.
func (s *Session) classify(sql string) verdict {
	return link.ClassifyLead(sql, s.lead(sql))
}

// stickyNeed looks at a client message before it is forwarded and reports what session
// state it creates or may release, and notes the settings it names (in every pool mode:
// RESET must return to the startup value in session mode too). It does not consume the
// message.
func (s *Session) stickyNeed(typ byte, n int) (pinReason, bool, error) {
	s.set.Load().noRequest()
	var v verdict
	switch typ {
	case 'Q':
		s.reqTx = 0
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
		s.noteRequest(v.Set, v.Begin, v.End)
		if v.Begin {
			s.reqTx |= txBegins
		}
		if v.End {
			s.reqTx |= txEnds
		}
		v.Pin, v.Release = s.sqlNeed(q, v.Pin, v.Release)
		if s.listening && s.mode != config.PoolModeSession && (v.Release || s.unlistenWatching()) {
			s.unlistenQueued(q)
		}
	case 'B':
		m, err := s.rd.Peek(n)
		if err != nil {
			return 0, false, err
		}
		body := wire.Body(m)
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			break
		}
		name := f.Second(body)
		if def := s.lookupStmt(name); def != nil {
			v.Pin, v.Release = def.pin, def.release
			s.noteRequest(def.set, false, false)
		} else if len(name) == 0 {
			v.Pin, v.Release = s.unnamedPin, s.unnamedRelease
			if st := s.set.Load(); st != nil {
				st.req = st.unnamed
			}
		}
	case 'P':
		m, err := s.rd.Peek(n)
		if err != nil {
			return 0, false, err
		}
		body := wire.Body(m)
		if len(body) == 0 || body[0] != 0 {
			break // named: classified when registered, pinned at Bind
		}
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			break
		}
		query := f.Second(body)
		if len(query) == 0 {
			break
		}
		u := s.classify(unsafe.String(&query[0], len(query)))
		if u.Pin == 0 && !u.Release && u.Set == nil {
			u = s.execNeed(unsafe.String(&query[0], len(query)), u)
		}
		if u.Pin&pinPrepare != 0 && s.prepOf(unsafe.String(&query[0], len(query))) != nil {
			u.Pin &^= pinPrepare // the client's statement, not the server's (sqlprep_ext.go)
		}
		s.unnamedPin, s.unnamedRelease = u.Pin, u.Release
		if u.Set != nil || s.set.Load() != nil {
			s.settingsState().unnamed = u.Set
		}
	}
	switch {
	case s.mode == config.PoolModeSession:
		return 0, false, nil
	case s.kind.forced():
		return pinSession, false, nil
	}
	return v.Pin, v.Release, nil
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

// waitDirect queues for a direct slot up to query_wait_timeout, or until a cancel request
// for the client ends the wait; the client counts as waiting meanwhile.
func (s *Session) waitDirect(reason pinReason) error {
	s.warnDirectWait(reason)
	s.mu.Lock()
	s.waitKind, s.waitSince = waitDirect, time.Now().UnixNano()
	s.mu.Unlock()
	ctx, cancel := waitContext(s.srv.Config())
	defer cancel()
	err := s.entry.direct.acquire(ctx, s)
	s.mu.Lock()
	s.waitKind = waitNone
	s.mu.Unlock()
	if errors.Is(err, errCanceledWaiting) {
		return canceledError() // a cancel request ended the wait (cancelwait.go)
	}
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
// itself carries. Statements under other names than pgmux's count when made by SQL
// PREPARE, and, where pgmux renames the client's statements, when made by Parse too:
// those are pgmux's copies of the client's statements, which a Query stopped by an error
// can leave on the server (sqlmulti.go closedAfter) and no other client may see.
func (s *Session) stateCheckSQL() string {
	var b strings.Builder
	b.WriteString("SELECT (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())" +
		" + (SELECT count(*) FROM pg_catalog.pg_listening_channels())" +
		" + (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())" +
		" + (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)" +
		" + (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE ")
	if s.prep == prepPass {
		b.WriteString("from_sql AND ")
	}
	b.WriteString("name NOT LIKE 'pgmux\\_%')" +
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
		for _, p := range st.Start {
			add(p.Name)
		}
		for _, p := range st.Own {
			add(p.Name)
		}
		st.TouchedNames(add)
	}
	s.mu.Unlock()
	b.WriteString("'))")
	return b.String()
}

// What the client's Query does to a transaction block (Session.reqTx).
const (
	txBegins uint8 = 1 << iota
	txEnds
)

// releaseCheckNow reports whether the state check may follow the client's request now
// (a Query or a Sync, typ): only where it runs outside a transaction block, the only
// place where its answer can unpin the client. Inside one it would be the transaction's
// first statement to take a snapshot, which a direct session's transaction does not
// have: a SET TRANSACTION ISOLATION LEVEL after a RESET ALL then failed with 25001, and
// a REPEATABLE READ transaction's snapshot was taken early. So it waits, while the
// client may be in a block (its last ReadyForQuery said so, or an earlier request is
// still unanswered, or this Query begins one), for a request that ends the block.
func (s *Session) releaseCheckNow(typ byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Pending > 1 {
		return false
	}
	if s.TxStatus == 'I' {
		return typ != 'Q' || s.reqTx&txBegins == 0
	}
	return typ == 'Q' && s.reqTx == txEnds
}

// sendStateCheck follows the client's request with the hidden state check.
func (s *Session) sendStateCheck(c *pool.Conn) error {
	s.mu.Lock()
	s.q.push(&expect{Kind: 'Q', Hide: true, Check: true, Seq: s.pinSeq})
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
			l.Skip('Q')
		}
		// The Query was accounted when it was linked: write the replacement only.
		if err := c.Wr.Write(wire.Query(nil, do)); err != nil {
			return &wire.WriteError{Err: err}
		}
		return nil
	}
	s.unnamed.live = false // the server's unnamed statement is now the DO block
	b := link.AppendRunUnnamed(nil, do)
	s.mu.Lock()
	s.Unsynced = true
	s.mu.Unlock()
	return s.send(c, b, expect{Kind: 'P', Hide: true}, expect{Kind: 'B', Hide: true}, expect{Kind: 'E'})
}

func zapReason(r pinReason) zap.Field { return zap.Stringer("reason", r) }
