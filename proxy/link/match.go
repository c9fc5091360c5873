package link

// The response queue's decisions, without I/O: which request a server message answers,
// whether the client sees it, and which requests it completes. The relay
// (proxy/relay.go Session.answer, retireReady, skipToSync) applies what these return to
// the server's state; match_test.go drives them with message sequences alone.

// ErrorSkipsToSync reports whether an ErrorResponse answering a request of that kind
// makes the server skip to the next Sync: it does for an extended-protocol message; a
// Query's or a FunctionCall's error ends with that request's own ReadyForQuery.
func ErrorSkipsToSync(kind byte) bool {
	return kind != 'Q' && kind != 'S' && kind != 'F'
}

// Rows pgmux reads of its hidden queries (AnswerStep.Row).
const (
	RowCheck    = iota + 1 // the session-state check (proxy/sticky.go)
	RowSettings            // a settings read-back (proxy/settings_link.go)
	RowClear               // the client's DISCARD ALL or DEALLOCATE ALL (proxy/stmtclear.go)
	RowHideCC              // the client's Query with pgmux's re-sets (proxy/settings_inplace.go)
	RowParams              // the ParameterDescription of a client's Describe of Head.Def (proxy/failedtx.go)
)

// AnswerStep is what one server message (not ReadyForQuery, not ErrorResponse) does to
// the queue: the request it belongs to, whether that request is now complete (popped),
// whether the client must not see the message, whether pgmux reads its row, and what
// the relay must record on the server's state.
type AnswerStep[S any] struct {
	Head     Answered[S] // the request the message belongs to; zero when none is queued
	Queued   bool        // a request was queued
	Popped   bool        // the message completed Head, which left the queue
	Hide     bool        // the client must not see the message
	Row      int         // RowCheck, RowSettings, RowClear or RowHideCC: pgmux reads the message; else 0
	Prepared bool        // Head's preparation of Head.Stmt is confirmed (proxy/stmtcache.go prepared)
	Synced   bool        // Head, a hidden settings sync, completed (proxy/settings_link.go syncAnswered)
	Checked  bool        // Head.Reg, the client's statement, parsed fine (proxy's stmtDef.checked)
	// Shape: the message (NoData or RowDescription) ends the client's Describe of
	// Head.Def: it says whether the statement returns rows (proxy/failedtx.go).
	Shape bool
}

// Answered is what the relay reads of the request a server message belongs to: the
// fields of its Expect that AnswerStep's flags act on, copied out before the request may
// leave the queue (an Expect is 128 bytes; this, 64).
type Answered[S any] struct {
	Seq, Prep uint32
	Setting   uint8
	Stmt, Val string
	Reg, Def  *S
}

// Answer matches a server message of type typ to the oldest queued request and retires
// it when the message completes it: ParseComplete, BindComplete, CloseComplete and
// NoData complete their request, RowDescription completes a Describe, and
// CommandComplete, EmptyQueryResponse and PortalSuspended complete an Execute (but for a
// clearing one's CommandComplete, which the caller retires once it has read it:
// proxy/stmtclear.go readClear; a Query's and a FunctionCall's end only at
// ReadyForQuery). ParameterDescription is hidden when the client already has it from a
// Describe that was retried.
func (q *Queue[S, F, D]) Answer(typ byte) AnswerStep[S] {
	if q.size == 0 {
		return AnswerStep[S]{}
	}
	head := &q.buf[q.head] // read in place: a copy of an Expect is 128 bytes
	st := AnswerStep[S]{Queued: true, Hide: head.Hide, Head: Answered[S]{Seq: head.Seq, Prep: head.Prep,
		Setting: head.Setting, Stmt: head.Stmt, Val: head.Val, Reg: head.Reg, Def: head.Def}}
	described := head.Kind == 'D' && head.Def != nil
	switch typ {
	case 't':
		if head.ParamsSent {
			st.Hide = true
			return st
		}
		if described {
			st.Row = RowParams
		}
	case '1':
		st.Checked = head.Reg != nil
		st.Prepared = head.Prep != 0
		st.Popped = true
	case '2', '3', 'n':
		st.Popped = true
		st.Shape = typ == 'n' && described
	case 'T':
		st.Popped = head.Kind == 'D'
		st.Shape = described
	case 'C', 'I', 's':
		if typ == 'C' {
			st.Prepared = head.Prep != 0 // pgmux's PREPARE, sent as a Query or executed
			st.Synced = head.Setting == SetSync || head.Setting == SetSyncReset
		}
		// A clearing Execute (DISCARD ALL, DEALLOCATE) is retired by the caller, which
		// reads its CommandComplete (proxy/stmtclear.go readClear).
		st.Popped = head.Kind == 'E' && (typ != 'C' || head.Clear == 0)
	}
	switch {
	case head.Check:
		st.Row = RowCheck
	case head.Setting == SetRead:
		st.Row = RowSettings
	case head.Clear != 0:
		st.Row = RowClear
	case head.HideCC != 0:
		st.Row = RowHideCC
	}
	if st.Popped {
		q.drop()
	}
	return st
}

// AnswerPlain is Answer for the case most answers are, settled in place: the oldest
// request is the client's own and plain (PlainRow's test), has nothing the message could
// confirm (no statement preparation, no registration, no statement described) and typ is
// ParseComplete, BindComplete, CloseComplete, NoData, RowDescription, CommandComplete,
// EmptyQueryResponse or PortalSuspended. Answer would then report only whether the
// request left the queue, and build its 100-byte step to say so. It reports whether it
// handled the message (false: nothing changed, Answer is to be asked) and whether the
// request left the queue.
func (q *Queue[S, F, D]) AnswerPlain(typ byte) (handled, popped bool) {
	if q.size == 0 {
		return false, false
	}
	h := &q.buf[q.head]
	if h.Hide || h.Check || h.Setting != 0 || h.Clear != 0 || h.HideCC != 0 || h.Prep != 0 ||
		h.Reg != nil || h.Def != nil {
		return false, false
	}
	switch typ {
	case '1', '2', '3', 'n':
		popped = true
	case 'T':
		popped = h.Kind == 'D'
	case 'C', 'I', 's':
		popped = h.Kind == 'E'
	default:
		return false, false
	}
	if popped {
		q.drop()
	}
	return true, popped
}

// PlainRow reports whether a DataRow now answers, as most do, a request of the client's
// that pgmux neither hides nor reads: Answer would then leave the queue as it is and
// report nothing to do, so the relay of a result's rows skips it.
func (q *Queue[S, F, D]) PlainRow() bool {
	if q.size == 0 {
		return false
	}
	h := &q.buf[q.head]
	return !h.Hide && !h.Check && h.Setting == 0 && h.Clear == 0 && h.HideCC == 0
}

// RetireReady retires the requests a ReadyForQuery ends: everything up to and including
// the oldest Sync, Query or FunctionCall the server answers (not Skipped), which it
// returns (zero when the queue held none). skipped is called for each request retired before it, which the server skipped
// or answered without completing.
func (q *Queue[S, F, D]) RetireReady(skipped func(Expect[S, F, D])) Expect[S, F, D] {
	for {
		e, ok := q.Pop()
		if !ok {
			return Expect[S, F, D]{}
		}
		switch e.Kind {
		case 'S', 'Q', 'F':
			if !e.Skipped {
				return e
			}
		}
		skipped(e)
	}
}

// SkipToSync retires the requests an ErrorResponse ends: the server skips every
// extended-protocol message up to the next Sync, which stays queued for the
// ReadyForQuery that answers it. skipped is called for each request retired, the first
// with first set. It reports whether a Sync was queued; when none was, the server keeps
// skipping until the client sends one.
func (q *Queue[S, F, D]) SkipToSync(skipped func(e Expect[S, F, D], first bool)) (syncQueued bool) {
	first := true
	for {
		e, ok := q.Peek()
		if !ok {
			return false
		}
		if e.Kind == 'S' {
			return true
		}
		q.Pop()
		skipped(e, first)
		first = false
	}
}
