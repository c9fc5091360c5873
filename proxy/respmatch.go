package proxy

import "github.com/pgmux/pgmux/proxy/link"

// The response queue's decisions, without I/O: which request a server message answers,
// whether the client sees it, and which requests it completes. The relay (relay.go
// Session.answer, retireReady, skipToSync) applies what these return to the server's
// state; respmatch_test.go drives them with message sequences alone.

// answerStep is what one server message (not ReadyForQuery, not ErrorResponse) does to
// the queue: the request it belongs to, whether that request is now complete (popped),
// whether the client must not see the message, whether pgmux reads its row, and what
// the relay must record on the server's state.
type answerStep struct {
	head     answered // the request the message belongs to; zero when none is queued
	queued   bool     // a request was queued
	popped   bool     // the message completed head, which left the queue
	hide     bool     // the client must not see the message
	row      int      // rowCheck, rowSettings or rowClear: pgmux reads the message; else 0
	prepared bool     // head's preparation of head.stmt is confirmed (stmtcache.go prepared)
	synced   bool     // head, a hidden settings sync, completed (settings_link.go syncAnswered)
	checked  bool     // head.reg, the client's statement, parsed fine (stmtDef.checked)
}

// answered is what the relay reads of the request a server message belongs to: the
// fields of its expect that answerStep's flags act on, copied out before the request may
// leave the queue (an expect is 152 bytes; this, 56).
type answered struct {
	seq, prep uint32
	setting   uint8
	stmt, val string
	reg       *stmtDef
}

// answer matches a server message of type typ to the oldest queued request and retires
// it when the message completes it: ParseComplete, BindComplete, CloseComplete and
// NoData complete their request, RowDescription completes a Describe, and
// CommandComplete, EmptyQueryResponse and PortalSuspended complete an Execute (but for a
// clearing one's CommandComplete, which readClear retires; a Query's and a FunctionCall's
// end only at ReadyForQuery). ParameterDescription is hidden when
// the client already has it from a Describe that was retried.
func (q *respQueue) answer(typ byte) answerStep {
	if q.size == 0 {
		return answerStep{}
	}
	head := &q.buf[q.head] // read in place: a copy of an expect is 128 bytes
	st := answerStep{queued: true, hide: head.Hide, head: answered{seq: head.Seq, prep: head.Prep,
		setting: head.Setting, stmt: head.Stmt, val: head.Val, reg: head.Reg}}
	switch typ {
	case 't':
		if head.ParamsSent {
			st.hide = true
			return st
		}
	case '1':
		st.checked = head.Reg != nil
		st.prepared = head.Prep != 0
		st.popped = true
	case '2', '3', 'n':
		st.popped = true
	case 'T':
		st.popped = head.Kind == 'D'
	case 'C', 'I', 's':
		if typ == 'C' {
			st.prepared = head.Prep != 0 // pgmux's PREPARE, sent as a Query or executed
			st.synced = head.Setting == link.SetSync || head.Setting == link.SetSyncReset
		}
		// A clearing Execute (DISCARD ALL, DEALLOCATE) is retired by readClear, which
		// reads its CommandComplete (stmtclear.go).
		st.popped = head.Kind == 'E' && (typ != 'C' || head.Clear == 0)
	}
	switch {
	case head.Check:
		st.row = rowCheck
	case head.Setting == link.SetRead:
		st.row = rowSettings
	case head.Clear != 0:
		st.row = rowClear
	case head.HideCC != 0:
		st.row = rowHideCC
	}
	if st.popped {
		q.drop()
	}
	return st
}

// retireReady retires the requests a ReadyForQuery ends: everything up to and including
// the oldest Sync, Query or FunctionCall, which it returns (zero when the queue held
// none). skipped is called for each request retired before it, which the server skipped
// or answered without completing.
func (q *respQueue) retireReady(skipped func(expect)) expect {
	for {
		e, ok := q.pop()
		if !ok {
			return expect{}
		}
		switch e.Kind {
		case 'S', 'Q', 'F':
			return e
		}
		skipped(e)
	}
}

// skipToSync retires the requests an ErrorResponse ends: the server skips every
// extended-protocol message up to the next Sync, which stays queued for the
// ReadyForQuery that answers it. skipped is called for each request retired, the first
// with first set. It reports whether a Sync was queued; when none was, the server keeps
// skipping until the client sends one.
func (q *respQueue) skipToSync(skipped func(e expect, first bool)) (syncQueued bool) {
	first := true
	for {
		e, ok := q.peek()
		if !ok {
			return false
		}
		if e.Kind == 'S' {
			return true
		}
		q.pop()
		skipped(e, first)
		first = false
	}
}
