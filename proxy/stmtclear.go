package proxy

import (
	"bytes"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// DISCARD ALL and DEALLOCATE ALL clear the client's statements (Session.stmts) when the
// server completes them, not when they are sent: in a transaction block DISCARD ALL
// fails (25001), a statement before DEALLOCATE ALL in the same Query may fail so that it
// never runs, and a pipelined request does not know what those before it did.
//
// Ownership: Session.stmts belongs to the session goroutine; the server's answers arrive
// on the connection's reader goroutine. The hand-off is one way, through stmtClears:
//
//   - the session goroutine numbers each Query holding DISCARD ALL or DEALLOCATE ALL
//     (sent), stamps every statement it registers with the number of the last such Query
//     sent before it (stmtDef.born), and marks the Query's expect with its number;
//   - the reader, seeing that Query's CommandComplete "DISCARD ALL" or "DEALLOCATE ALL",
//     publishes the number (done, an atomic);
//   - the session goroutine, before it looks a name up, drops the statements born before
//     the latest published number (applied remembers how far it went).
//
// While such a Query is unanswered, what the client's next statement message means
// depends on its outcome (a Parse of a name the clear frees is no duplicate), so the
// session goroutine waits for the answer before it looks a name up (awaitClears), having
// flushed the Query to the server. That costs a round trip only to a client that
// pipelines statement messages behind DISCARD ALL or DEALLOCATE ALL. Only the session
// goroutine waits, never the reader, so the wait cannot block the answer it waits for.
type stmtClears struct {
	sent    uint32        // session goroutine only: clearing Queries sent
	applied uint32        // session goroutine only: the latest number applied to stmts
	done    atomic.Uint32 // written by the reader: the latest number the server completed
	// probeDue: pgmux answered a client's Parse itself since the last link; the next link
	// checks the statement on its server (deferred.go probeDeferred). Session goroutine
	// only; here, it fills the padding before dropped (TestSessionSizeBounded).
	probeDue bool
	// DEALLOCATE name forgets one statement, and a PREPARE in a Query of several
	// statements makes one: the reader appends the drops the server completed to
	// dropped (under Session.mu), in order, and counts them in drops; the session
	// goroutine applies them (dropsApplied: how many it has).
	dropped      []clearDrop
	drops        atomic.Uint32
	dropsApplied uint32
}

// clearDrop is one DEALLOCATE of a client statement: when the server completes it, the
// client's name no longer names def (a statement made again since is another def). With
// prep, it is a SQL PREPARE in a Query sqlmulti.go handles instead: when the server
// completes it, def is the client's statement name (an error before it, which stops
// the Query, leaves the name as it was). cleared: a DEALLOCATE ALL or DISCARD ALL comes
// before it in the Query, so the statement outlives that clear (noteDrops sets its born).
type clearDrop struct {
	name    string
	def     *stmtDef // nil: a DEALLOCATE of a name the client did not have (it fails)
	prep    bool
	cleared bool
}

// clearOp is what executing a statement does to the client's statement names: name
// deallocates one, or, as clearAll, every one (DISCARD ALL, DEALLOCATE ALL).
//
// Its size counts: the client's unnamed statement holds one in sessionWork, which must
// stay within its allocation size class (work_test.go), hence clearAll in name rather
// than a bool of its own.
type clearOp struct {
	name string
	// exec: the statement is one SQL EXECUTE of a client statement (sqlexec_ext.go); its
	// Execute's errors name that statement as the client does.
	exec *stmtExec
	// prep: the statement is one SQL PREPARE (sqlprep_ext.go); its Execute makes the
	// client's statement.
	prep *sqlPrep
}

// clearAll is clearOp.name for a statement that clears every name: no statement name
// holds a NUL byte (the protocol's names are C strings).
const clearAll = "\x00all"

func (o clearOp) any() bool { return o.name != "" || o.exec != nil || o.prep != nil }

// all reports whether the statement clears every name.
func (o clearOp) all() bool { return o.name == clearAll }

// clearOf reports what the statement q, sent in a Parse (one statement), does to the
// client's statement names when executed.
func (s *Session) clearOf(q string) clearOp {
	l := s.lead(q)
	if !l.Interesting {
		return clearOp{}
	}
	sts := sqlscan.Scan(q)
	if len(sts) != 1 {
		return clearOp{}
	}
	switch sts[0].Kind {
	case sqlscan.KindDiscardAll, sqlscan.KindDeallocateAll:
		return clearOp{name: clearAll}
	case sqlscan.KindDeallocate:
		if st, ok := sqlStatementFirst(q, l.Keyword); ok {
			return clearOp{name: strings.Clone(st.Name)}
		}
	case sqlscan.KindPrepare:
		// In cache mode prepOf's (register, parseUnnamed); in unnamed mode it makes an
		// own statement (executeOwnPrep).
		if s.prep == prepUnnamed {
			if p := s.sqlPrepOf(q); p != nil {
				p.own = true
				return clearOp{prep: p}
			}
		}
	}
	return clearOp{}
}

// clearWait bounds one wait for a clearing Query's answer before the link is checked
// again; maxClearWait bounds the whole wait. A client that breaks the protocol (a Query
// in the middle of its COPY data) may leave the Query unanswered for good: after
// maxClearWait the name is looked up as things stand, which may answer as if the clear
// had not happened yet, rather than never.
const (
	clearWait    = 50 * time.Millisecond
	maxClearWait = 10 * time.Second
)

// noteClear marks the Query just queued (the tail of s.q) as clearing the client's
// statements when the server completes it, and has it flushed at once, so that a wait
// for its answer cannot stall. Session goroutine.
func (s *Session) noteClear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ErrSkip {
		return // the server ignores it until the client's Sync: it clears nothing
	}
	s.clears.sent++
	s.q.markClear(s.clears.sent)
	s.flushNow = true
}

// noteDrops marks the request just queued (the tail of s.q) as deallocating the client's
// statements drops, one per DEALLOCATE of a name in it, in the order the server runs
// them: each is forgotten when the server completes its DEALLOCATE. Session goroutine.
func (s *Session) noteDrops(drops []clearDrop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ErrSkip {
		return
	}
	s.clears.sent++
	s.q.markClear(s.clears.sent)
	if e := s.q.tail(); e != nil {
		e.Drops = drops
		for _, d := range drops {
			if d.prep && d.def != nil {
				// Made after the clears before the Query, and after its own if cleared
				// (its number is the Query's, published at its DEALLOCATE ALL).
				d.def.born = e.Clear - 1
				if d.cleared {
					d.def.born = e.Clear
				}
			}
		}
	}
	s.flushNow = true
}

// readClear reads a clearing request's CommandComplete and publishes its number when the
// command was DISCARD ALL or DEALLOCATE ALL, or the drop when it was a DEALLOCATE of a
// name or a PREPARE (not another statement of the same Query); the client's Execute is
// retired.
// Reader goroutine; the message goes on to the client unless hide.
func (s *Session) readClear(rd *wire.Reader, n int, hide bool) error {
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	tag := wire.Body(m)
	if i := bytes.IndexByte(tag, 0); i >= 0 {
		tag = tag[:i]
	}
	s.mu.Lock()
	head := s.q.front()
	switch {
	case head == nil:
	case bytes.Equal(tag, []byte("DISCARD ALL")) || bytes.Equal(tag, []byte("DEALLOCATE ALL")):
		if head.Clear > s.clears.done.Load() {
			s.clears.done.Store(head.Clear)
		}
	case bytes.Equal(tag, []byte("PREPARE")) && len(head.Drops) > 0 && head.Drops[0].prep,
		bytes.Equal(tag, []byte("DEALLOCATE")) && len(head.Drops) > 0 && !head.Drops[0].prep:
		if d := head.Drops[0]; d.def != nil {
			s.clears.dropped = append(s.clears.dropped, d)
			s.clears.drops.Add(1)
		}
		head.Drops = head.Drops[1:]
	}
	if head != nil && head.Kind == 'E' {
		s.q.pop()
	}
	s.mu.Unlock()
	s.relayRead(m, hide)
	return nil
}

// applyClears waits for clearing Queries still unanswered on the link, then drops the
// client's statements the server's answers cleared, and keeps those its PREPAREs made,
// in the order the server ran them. Session goroutine; no lock held.
func (s *Session) applyClears() {
	if s.q.clears.Load() > 0 {
		s.awaitClears()
	}
	if s.clears.drops.Load() != s.clears.dropsApplied {
		s.mu.Lock()
		ds := s.clears.dropped
		s.clears.dropped = nil
		s.clears.dropsApplied = s.clears.drops.Load()
		s.mu.Unlock()
		for _, d := range ds {
			switch {
			case d.prep:
				s.keepAs(d.name, d.def) // born when the Query was sent (noteDrops)
			case s.stmts[d.name] == d.def:
				delete(s.stmts, d.name)
			}
		}
	}
	done := s.clears.done.Load()
	if done == s.clears.applied {
		return
	}
	s.clears.applied = done
	for name, def := range s.stmts {
		if def.born < done {
			delete(s.stmts, name)
		}
	}
}

// awaitClears waits until the server has answered every clearing Query sent, or the
// link has ended (a lost server: the client is being told).
func (s *Session) awaitClears() {
	s.awaitUntil(func() bool { return s.q.clears.Load() == 0 })
}

// awaitUntil waits until done reports true, the link has ended or maxClearWait has
// passed, looking again whenever the server's reader wakes it (respQueue.woken) and
// every clearWait.
func (s *Session) awaitUntil(done func() bool) {
	var t *time.Timer
	deadline := time.Now().Add(maxClearWait)
	for !done() && time.Now().Before(deadline) {
		s.mu.Lock()
		c, wake := s.server, s.q.wake
		s.mu.Unlock()
		if c == nil || c.Lessee() != pool.Lessee(s) || s.closed.Load() {
			return
		}
		if t == nil {
			t = time.NewTimer(clearWait)
			defer t.Stop()
		} else {
			t.Reset(clearWait)
		}
		select {
		case <-wake:
		case <-t.C:
		}
	}
}
