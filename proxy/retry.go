package proxy

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pgmux/pgmux/pool"
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
// It is done only when it is the same as the client sending its request again:
//   - the failed message is a Bind or Describe of a statement pgmux prepared, and nothing
//     in the request before it was executed (no Execute earlier in the request);
//   - the client was not inside an explicit transaction (an error there aborts it);
//   - the request has ended (its Sync was sent) and nothing was sent after it, so the
//     Sync is the only answer outstanding;
//   - what follows the failed message is Describe, Execute and Close of portals only,
//     or, after a Describe of the statement, Binds of that statement;
//   - the request describes the statement or its portal, so the client reads the new
//     RowDescription. A client that binds and executes with a result shape it cached
//     (pgx's statement cache, asyncpg) would decode rows of a shape it never saw; it gets
//     the error, as it would from PostgreSQL, and its next use works.
//   - the request has not been retried already.
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

// maxLogged bounds the bytes kept for one request; a larger request is not retried.
const maxLogged = 64 << 10

// reqLog is what pgmux sent to one server connection for the linked client's current
// request (messages since the previous Sync, Query or FunctionCall).
//
// It lives in the connection's serverState and is guarded by its wmu: the session
// goroutine appends what it writes, and the connection's reader goroutine replays it in
// a retry (planRetry).
type reqLog struct {
	buf     []byte
	execAt  int  // offset of the request's first Execute; -1 when none
	bindAt  int  // offset of the request's first Bind; -1 when none
	open    bool // a request is being sent: its Sync (or Query, FunctionCall) is not
	spoiled bool // not replayable: too large, or a message that was not kept
	retried bool // already retried once
	// cand: a message a retry could start from (retryFrom) was logged in this request.
	// Until one is, a Bind or Execute spoils the request: planRetry never replays from
	// after either, so nothing in it could be retried, and it is not copied.
	cand bool
}

// retryFrom reports whether a retry could start from the message e expects: planRetry's
// conditions on the failed message that do not depend on the rest of the request.
func retryFrom(e *expect) bool {
	return (e.Kind == 'B' || e.Kind == 'D') && e.Def != nil && !e.Def.sql && !e.Hide
}

// expects notes the expectations of messages about to be logged: a candidate for a retry,
// or a Bind or Execute before any, which spoils the request.
func (l *reqLog) expects(es []expect) {
	l.begin()
	for i := 0; i < len(es) && !l.spoiled && !l.cand; i++ {
		switch {
		case retryFrom(&es[i]):
			l.cand = true
		case es[i].Kind == 'B' || es[i].Kind == 'E':
			l.spoiled = true
		}
	}
}

// keeps reports whether a message of type typ about to be sent is to be logged, or only
// noted (skip): it is not once the request cannot be retried.
func (l *reqLog) keeps(typ byte) bool {
	l.begin()
	if !l.cand && typ == 'E' {
		l.spoiled = true
	}
	return !l.spoiled
}

// begin starts the log afresh when the previous request has ended.
func (l *reqLog) begin() {
	if l.open {
		return
	}
	if cap(l.buf) > 4*maxLogged {
		l.buf = nil
	}
	l.buf = l.buf[:0]
	l.execAt, l.bindAt = -1, -1
	l.open, l.spoiled, l.retried, l.cand = true, false, false, false
}

// add records messages sent as they are and returns the offset of the first.
func (l *reqLog) add(b []byte) int {
	l.begin()
	base := len(l.buf)
	if l.spoiled || base+len(b) > maxLogged {
		l.spoiled = true
		l.buf = l.buf[:0]
		l.scan(b, base)
		return base
	}
	l.buf = append(l.buf, b...)
	l.scan(b, base)
	return base
}

// scan notes Executes and request ends among the whole messages in b.
func (l *reqLog) scan(b []byte, base int) {
	for i := 0; i+5 <= len(b); {
		typ := b[i]
		switch typ {
		case 'E':
			if l.execAt < 0 {
				l.execAt = base + i
			}
		case 'B':
			if l.bindAt < 0 {
				l.bindAt = base + i
			}
		case 'S':
			l.open = false
		case 'Q', 'F':
			l.open, l.spoiled = false, true
		}
		i += 1 + int(binary.BigEndian.Uint32(b[i+1:]))
	}
}

// skip records a message of type typ that was forwarded without being kept.
func (l *reqLog) skip(typ byte) {
	l.begin()
	l.spoiled = true
	// CopyDone and CopyFail end a COPY FROM STDIN; what follows is a new request.
	if typ == 'S' || typ == 'Q' || typ == 'F' || typ == 'c' || typ == 'f' {
		l.open = false
	}
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
	l.expects(es)
	base := l.add(b)
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
	l := &st.log
	if l.spoiled || l.open || l.retried || s.TxStatus != 'I' || len(st.skipped) == 0 {
		return nil
	}
	if head, ok := s.q.peek(); !ok || s.q.len() != 1 || head.Kind != 'S' || head.Hide {
		return nil
	}
	f := st.skipped[0]
	if (f.Kind != 'B' && f.Kind != 'D') || f.Def == nil || f.Def.sql || f.Hide || f.Off < 0 || int(f.Off) >= len(l.buf) {
		return nil
	}
	if l.execAt >= 0 && l.execAt < int(f.Off) {
		return nil // something in the request already ran
	}
	if l.bindAt >= 0 && l.bindAt < int(f.Off) {
		return nil // a portal bound earlier went with the aborted transaction
	}
	if !f.Fresh && !paramsKeepMeaning(f.Def, f.Kind, l.buf[f.Off:]) {
		return nil
	}
	described := f.Kind == 'D'
	for _, e := range st.skipped[1:] {
		if e.Kind == 'B' && e.Def == f.Def && f.Kind == 'D' && !e.Hide {
			continue // Describe of the statement, then Bind of it: the new shape is known
		}
		if e.Hide || e.Def != nil || e.Stmt != "" || (e.Kind != 'D' && e.Kind != 'E' && e.Kind != 'C') {
			return nil
		}
		described = described || e.Kind == 'D'
	}
	if !described {
		return nil
	}
	l.retried = true
	s.q.hideHead() // the failed request's ReadyForQuery: the retry's goes to the client
	def := f.Def
	var b []byte
	if present, _ := st.stmts.lookup(def.server, s.Reqs, nil); present {
		st.stmts.remove(def.server)
		b = closeMsg(b, 'S', def.server)
		s.q.push(&expect{Kind: 'C', Hide: true, Stmt: def.server, Stale: true})
	}
	for _, ev := range st.stmts.addDef(def, nil) {
		b = closeMsg(b, 'S', ev)
		s.q.push(&expect{Kind: 'C', Hide: true, Stmt: ev})
	}
	b = def.parseMsg(b, def.server)
	s.q.push(&expect{Kind: 'P', Hide: true, Stmt: def.server, Prep: st.stmts.preparing(def.server, s.Reqs, nil)})
	s.ops.serverParses.Add(1)
	b = append(b, l.buf[f.Off:]...)
	for i, e := range st.skipped {
		e.ParamsSent = i == 0 && e.Kind == 'D'
		s.q.push(&e)
	}
	s.q.push(&expect{Kind: 'S'})
	st.stmts.Retries.Add(1)
	return b
}

// planChanged reports whether an ErrorResponse is PostgreSQL's "cached plan must not
// change result type": SQLSTATE 0A000 from RevalidateCachedQuery. The routine field is
// matched because the message is translated and 0A000 also means "feature not
// supported"; a server that sends no routine field is taken at its SQLSTATE.
func planChanged(m []byte) bool {
	if !bytes.Contains(m, []byte("C0A000\x00")) {
		return false
	}
	routine := false
	for b := m[min(len(m), 5):]; len(b) > 0 && b[0] != 0; {
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			break
		}
		if b[0] == 'R' {
			routine = true
			if string(b[1:1+end]) == "RevalidateCachedQuery" {
				return true
			}
		}
		b = b[2+end:]
	}
	return !routine
}

// paramsKeepMeaning reports whether replaying the failed message gives the client's
// parameters the meaning they had. A statement prepared anew infers the types it left
// unspecified again, and they may have changed with the table (PostgreSQL itself keeps
// a statement's parameter types when it replans it): a binary value encoded for the old
// type would be read as the new one. So a Bind is replayed only if its parameters are
// text or their types were all given, and a Describe of the statement (whose client goes
// on to bind with the types it was told) only if they were all given.
func paramsKeepMeaning(def *stmtDef, kind byte, msg []byte) bool {
	typed := allTyped(def.types) || !strings.Contains(def.query, "$") // no $n: no parameters
	if kind == 'D' || typed {
		return typed
	}
	// Bind: portal, statement, format codes, parameters.
	body := msg[min(len(msg), 5):]
	for range 2 {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return false
		}
		body = body[i+1:]
	}
	if len(body) < 2 {
		return false
	}
	nf := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+2*nf+2 {
		return false
	}
	for k := 0; k < nf; k++ {
		if binary.BigEndian.Uint16(body[2+2*k:]) != 0 {
			return false // a binary parameter (nf == 1 applies to all of them)
		}
	}
	return true
}

// allTyped reports whether a Parse's parameter type section gives every type it lists
// (no zero, "infer") and lists at least one; a statement without parameters lists none,
// but so does one whose parameters are all inferred, so none counts as not typed.
func allTyped(types []byte) bool {
	if len(types) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(types))
	if n == 0 || len(types) < 2+4*n {
		return false
	}
	for k := 0; k < n; k++ {
		if binary.BigEndian.Uint32(types[2+4*k:]) == 0 {
			return false
		}
	}
	return true
}
