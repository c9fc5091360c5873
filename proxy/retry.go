package proxy

import (
	"runtime"
	"sync"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/link"
)

// Transparent retry after "cached plan must not change result type".
//
// A statement pgmux prepared on a server keeps the result type it had then; after DDL
// that changes it (ALTER TABLE under a SELECT *), PostgreSQL answers its Bind or
// Describe with 0A000 "cached plan must not change result type". The statement is then
// marked stale so its next use prepares it anew (skipToSync), and when the failed
// request can simply be sent again pgmux does so at once, on the same server: Close and
// Parse of the statement, then the client's messages from the failed one up to its Sync,
// as they were sent. The client sees only the answers of the retry.
//
// It is done only when that is the same as the client sending its request again: the
// rules are link.PlanRetry's (proxy/link/retry.go), and so is the log of what was sent
// (link.Log).
//
// To replay the request pgmux keeps the bytes it sent for it (reqLog), per server
// connection so idle clients hold nothing. The session's relay loop holds the
// connection's wmu while it writes a message; the server's reader goroutine writes the
// retry only if it gets wmu within a moment (lockBriefly) and then sees the Sync as the
// only request outstanding, so the retry lands on the wire right after the failed
// request and before anything the session sends next.

// lockBriefly takes mu if it is free now or soon (within lockWait): the session holds it
// only while it writes one message, and may still be letting go of it after writing the
// request that failed (or have been preempted meanwhile on a busy machine). Not waiting
// without bound keeps the reader from stalling for good behind a session blocked writing
// to a server that is itself blocked writing to this reader.
func lockBriefly(mu *sync.Mutex) bool {
	for i := 0; i < 64; i++ {
		if mu.TryLock() {
			return true
		}
		runtime.Gosched()
	}
	deadline := time.Now().Add(lockWait)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
		if mu.TryLock() {
			return true
		}
	}
	return false
}

// lockWait bounds how long a retry waits for the session to finish writing.
const lockWait = 100 * time.Millisecond

// reqLog is what pgmux sent to one server connection for the linked client's current
// request, for a replay (link.Log: what it keeps, and when a retry is planned).
//
// Owners: it lives in the connection's serverState and is guarded by its wmu: the session
// goroutine appends what it writes, and the connection's reader goroutine replays it in
// a retry (planRetry).
type reqLog = link.Log

// byProtocol reports whether def was prepared by pgmux from a protocol Parse, not by the
// client's SQL PREPARE: the statements a retry may prepare anew.
func byProtocol(def *stmtDef) bool { return !def.sql }

// keepsMeaning is link.Retry's KeepsMeaning for proxy's statements.
func keepsMeaning(first *expect, msg []byte) bool {
	return link.ParamsKeepMeaning(first.Def.query, first.Def.types, first.Kind, msg)
}

// linkLog returns c's request log when the session may retry on it, else nil.
func (s *Session) linkLog(c *pool.Conn) *reqLog {
	if s.prep != prepCache {
		return nil
	}
	if st := linkOf(c); st != nil {
		return &st.log
	}
	return nil
}

// logSent records bytes written to c for the client's request; expectations of Binds and
// Describes carry offsets relative to b, made absolute here.
func (s *Session) logSent(c *pool.Conn, b []byte, es []expect) {
	l := s.linkLog(c)
	if l == nil {
		return
	}
	link.LogExpects(l, es, byProtocol)
	base := l.Add(b)
	for i := range es {
		if es[i].Def != nil {
			es[i].Off += int32(base)
		}
	}
}

// planRetry decides, after skipToSync retired the requests the server skipped for a
// 0A000 error (in st.skipped), whether to retry the request, and if so returns the bytes
// to send and queues their expectations. s.mu and st.wmu are held.
func (s *Session) planRetry(st *serverState) []byte {
	head, _ := s.q.peek()
	replay, ok := link.PlanRetry(&st.log, link.Retry[stmtDef, errFix, clearDrop]{
		Status: s.TxStatus, Queued: s.q.len(), Head: head, Skipped: st.skipped,
		ByProtocol: byProtocol, KeepsMeaning: keepsMeaning,
	})
	if !ok {
		return nil
	}
	f := st.skipped[0]
	s.q.hideHead() // the failed request's ReadyForQuery: the retry's goes to the client
	def := f.Def
	// The server's copy, present, is closed whatever its state: its plan is the one
	// that failed.
	present, _ := st.stmts.lookup(def.server, s.Reqs, nil)
	p := st.stmts.prepare(def.server, present, s.Reqs, nil, def)
	b, es := closesFor(nil, nil, def.server, p)
	for i := range es {
		s.q.push(&es[i])
	}
	b = def.parseMsg(b, def.server)
	s.q.push(&expect{Kind: 'P', Hide: true, Stmt: def.server, Prep: p.Gen})
	s.ops.serverParses.Add(1)
	b = append(b, replay...)
	for i, e := range st.skipped {
		e.ParamsSent = i == 0 && e.Kind == 'D'
		s.q.push(&e)
	}
	s.q.push(&expect{Kind: 'S'})
	st.stmts.Retries.Add(1)
	return b
}
