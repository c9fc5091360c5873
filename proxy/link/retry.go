package link

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// The 0A000 retry's rules (the I/O that carries them out is proxy/retry.go).
//
// A statement pgmux prepared on a server keeps the result type it had then; after DDL
// that changes it, PostgreSQL answers its Bind or Describe with 0A000 "cached plan must
// not change result type" and skips the rest of the request up to its Sync. When the
// failed request can simply be sent again, the caller prepares the statement anew and
// replays the request from the failed message on, as it was sent: Log keeps those bytes,
// PlanRetry says whether and from where.

// MaxLogged bounds the bytes a Log keeps for one request; a larger request is not retried.
const MaxLogged = 64 << 10

// Log is what was sent to one server connection for its client's current request (the
// messages since the previous Sync, Query or FunctionCall), kept only while a retry
// could come of it.
//
// Owners: a Log is a value of the caller's per-server state, guarded by that server's
// write lock (proxy's serverState.wmu): the session appends what it writes, the server's
// reader plans a replay from it.
type Log struct {
	buf     []byte
	execAt  int  // offset of the request's first Execute; -1 when none
	bindAt  int  // offset of the request's first Bind; -1 when none
	open    bool // a request is being sent: its Sync (or Query, FunctionCall) is not
	spoiled bool // not replayable: too large, or a message that was not kept
	retried bool // already retried once
	// cand: a message a retry could start from (RetryFrom) was logged in this request.
	// Until one is, a Bind or Execute spoils the request: PlanRetry never replays from
	// after either, so nothing in it could be retried, and it is not copied.
	cand bool
}

// RetryFrom reports whether a retry could start from the message e expects: a Bind or
// Describe the client sent of a statement prepared from a protocol Parse (byProtocol:
// not one of SQL PREPARE, whose EXECUTE the server plans itself). These are PlanRetry's
// conditions on the failed message that do not depend on the rest of the request.
func RetryFrom[S, F, D any](e *Expect[S, F, D], byProtocol func(*S) bool) bool {
	return (e.Kind == 'B' || e.Kind == 'D') && e.Def != nil && byProtocol(e.Def) && !e.Hide
}

// LogExpects notes the expectations of messages about to be logged: a candidate for a
// retry, or a Bind or Execute before any, which spoils the request.
func LogExpects[S, F, D any](l *Log, es []Expect[S, F, D], byProtocol func(*S) bool) {
	l.begin()
	for i := 0; i < len(es) && !l.spoiled && !l.cand; i++ {
		switch {
		case RetryFrom(&es[i], byProtocol):
			l.cand = true
		case es[i].Kind == 'B' || es[i].Kind == 'E':
			l.spoiled = true
		}
	}
}

// Keeps reports whether a message of type typ about to be sent is to be logged (Add),
// or only noted (Skip): it is not once the request cannot be retried.
func (l *Log) Keeps(typ byte) bool {
	l.begin()
	if !l.cand && typ == 'E' {
		l.spoiled = true
	}
	return !l.spoiled
}

// begin starts the log afresh when the previous request has ended.
func (l *Log) begin() {
	if l.open {
		return
	}
	if cap(l.buf) > 4*MaxLogged {
		l.buf = nil
	}
	l.buf = l.buf[:0]
	l.execAt, l.bindAt = -1, -1
	l.open, l.spoiled, l.retried, l.cand = true, false, false, false
}

// Add records whole messages sent as they are and returns the offset of the first.
func (l *Log) Add(b []byte) int {
	l.begin()
	base := len(l.buf)
	if l.spoiled || base+len(b) > MaxLogged {
		l.spoiled = true
		l.buf = l.buf[:0]
		l.scan(b, base)
		return base
	}
	l.buf = append(l.buf, b...)
	l.scan(b, base)
	return base
}

// scan notes Binds, Executes and request ends among the whole messages in b.
func (l *Log) scan(b []byte, base int) {
	for i := 0; i+5 <= len(b); {
		switch b[i] {
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

// Skip records a message of type typ that was sent without being kept: the request can
// no longer be replayed.
func (l *Log) Skip(typ byte) {
	l.begin()
	l.spoiled = true
	// CopyDone and CopyFail end a COPY FROM STDIN; what follows is a new request.
	if typ == 'S' || typ == 'Q' || typ == 'F' || typ == 'c' || typ == 'f' {
		l.open = false
	}
}

// Retry is what PlanRetry is told: the link's state once the requests the server skipped
// for a 0A000 error have been retired, and two facts about the caller's statements.
type Retry[S, F, D any] struct {
	Status byte // the transaction status the server last reported
	// Queued counts the requests still queued on the link; Head is the first of them.
	Queued int
	Head   Expect[S, F, D]
	// Skipped: the requests the server skipped, the failed one first, as queued.
	Skipped []Expect[S, F, D]
	// ByProtocol reports whether a statement was prepared from a protocol Parse (RetryFrom).
	ByProtocol func(*S) bool
	// KeepsMeaning reports whether replaying the failed message msg (a Bind or Describe
	// of first.Def) gives the client's parameters the meaning they had: ParamsKeepMeaning
	// for the statement's text and parameter types. Not called for a Fresh one (parsed
	// in the same request: its parameters were bound to the new statement already).
	KeepsMeaning func(first *Expect[S, F, D], msg []byte) bool
}

// PlanRetry decides whether the failed request is sent again, which is the same as the
// client sending it again only when:
//   - the failed message is a Bind or Describe of a statement prepared from a protocol
//     Parse (RetryFrom), and nothing before it in the request was executed or bound (a
//     portal bound earlier went with the failed request);
//   - the client was not inside an explicit transaction (the error aborted it), and the
//     request has ended (its Sync was sent) with nothing sent after it, so its Sync is
//     the only answer outstanding;
//   - what follows the failed message is Describe, Execute and Close of portals only, or,
//     after a Describe of the statement, Binds of that statement;
//   - the request describes the statement or its portal, so the client reads the new
//     RowDescription (a client that binds and executes with a result shape it cached
//     would decode rows of a shape it never saw: it gets the error, as from PostgreSQL);
//   - its parameters keep their meaning (KeepsMeaning), and it was not retried already.
//
// When it is, PlanRetry marks the request retried and returns the bytes to send again:
// the log from the failed message to the Sync. The caller sends the statement's Parse in
// front of them and queues, after it, the Skipped expectations and the Sync's.
func PlanRetry[S, F, D any](l *Log, r Retry[S, F, D]) ([]byte, bool) {
	if l.spoiled || l.open || l.retried || r.Status != 'I' || len(r.Skipped) == 0 {
		return nil, false
	}
	if r.Queued != 1 || r.Head.Kind != 'S' || r.Head.Hide {
		return nil, false
	}
	f := &r.Skipped[0]
	if !RetryFrom(f, r.ByProtocol) || f.Off < 0 || int(f.Off) >= len(l.buf) {
		return nil, false
	}
	if l.execAt >= 0 && l.execAt < int(f.Off) {
		return nil, false // something in the request already ran
	}
	if l.bindAt >= 0 && l.bindAt < int(f.Off) {
		return nil, false // a portal bound earlier went with the aborted transaction
	}
	if !f.Fresh && !r.KeepsMeaning(f, l.buf[f.Off:]) {
		return nil, false
	}
	described := f.Kind == 'D'
	for _, e := range r.Skipped[1:] {
		if e.Kind == 'B' && e.Def == f.Def && f.Kind == 'D' && !e.Hide {
			continue // Describe of the statement, then Bind of it: the new shape is known
		}
		if e.Hide || e.Def != nil || e.Stmt != "" || (e.Kind != 'D' && e.Kind != 'E' && e.Kind != 'C') {
			return nil, false
		}
		described = described || e.Kind == 'D'
	}
	if !described {
		return nil, false
	}
	l.retried = true
	return l.buf[f.Off:], true
}

// PlanChanged reports whether an ErrorResponse is PostgreSQL's "cached plan must not
// change result type": SQLSTATE 0A000 from RevalidateCachedQuery. The routine field is
// matched because the message is translated and 0A000 also means "feature not
// supported"; a server that sends no routine field is taken at its SQLSTATE.
func PlanChanged(m []byte) bool {
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

// ParamsKeepMeaning reports whether replaying a failed message msg of kind 'B' or 'D'
// gives the client's parameters the meaning they had, for a statement of text query
// whose Parse gave the parameter type section types. A statement prepared anew infers
// the types it left unspecified again, and they may have changed with the table
// (PostgreSQL itself keeps a statement's parameter types when it replans it): a binary
// value encoded for the old type would be read as the new one. So a Bind is replayed
// only if its parameters are text or their types were all given, and a Describe of the
// statement (whose client goes on to bind with the types it was told) only if they were
// all given.
func ParamsKeepMeaning(query string, types []byte, kind byte, msg []byte) bool {
	typed := allTyped(types) || !strings.Contains(query, "$") // no $n: no parameters
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
