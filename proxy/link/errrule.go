package link

import "bytes"

// What an ErrorResponse from the linked server does, decided without I/O. The relay
// (proxy/relay.go Session.onError) gathers the facts (the request the error answers, the
// link's error bookkeeping, what the error says), asks ErrorRule, and carries out the
// step it returns: it records on the statements and the server's state, rewrites the
// message, retires what the server skips and writes (or swallows) the error.
// errrule_test.go drives the rule with tables of facts alone.

// ErrFacts is what the rule reads: the queue's head when the error arrived and what the
// session and the message say.
type ErrFacts[S, F, D any] struct {
	Head   Expect[S, F, D] // the request the error answers (zero when none is queued)
	Queued bool            // a request was queued
	// DefName: the client's name for Head.Def, the statement of a Bind or Describe.
	DefName string
	// RegChecked: Head.Reg, a statement pgmux answered the Parse of itself, was parsed
	// fine on a server before (proxy's stmtDef.checked).
	RegChecked bool
	// Rejected: the error says the server refused the statement's text (ParseRejected),
	// not the transaction's state, a timeout, a cancel or the connection.
	Rejected bool
	DropErr  bool // the client's next error is a consequence of one it was shown
	Held     bool // an error of pgmux's preparation before a Query is held (heldErr)
	Known    bool // the server's state is known (linkOf): its statement cache can be told
	// StaleCode: the error says a cached plan must not change result type (planChanged);
	// Gone: it says a type a cached plan used no longer exists (lookupFailed).
	StaleCode, Gone bool
}

// ErrReport is how an error the client does not see is accounted for.
type ErrReport uint8

const (
	ReportNone    ErrReport = iota // the client sees the error, or it is held
	ReportQuiet                    // the client's EXECUTE after pgmux's failed PREPARE: already told
	ReportSetting                  // pgmux's settings query: settingsRefused has it, logRefused says it
	ReportOwn                      // pgmux's own query failed: logged (but for failover's abort)
)

// ErrStep is what the relay does with one ErrorResponse.
type ErrStep struct {
	Hide    bool // the client does not see the error (Report says why)
	Report  ErrReport
	DropErr bool // the new value of the session's dropErr
	// Hold: keep a copy as the held error (proxy/sqlmulti.go), shown in place of the
	// 26000 the client's EXECUTE gets; UseHeld: this error is that EXECUTE's, so an
	// undefined-statement error is replaced by the held one; the held error is dropped
	// after it.
	Hold, UseHeld bool
	ReqErr        bool // the client's request failed: a reset in it may roll back (proxy/settings.go)
	CheckFailed   bool // the state check failed: the client stays pinned (proxy/sticky.go)
	RegFailed     bool // Head.Reg is not the client's statement: mark it failed
	// UnnamedFailed: the client's Parse of the unnamed statement (Head.Seq, its number)
	// failed; PostgreSQL dropped the client's unnamed statement before it tried, so the
	// client has none, nor after the Parses of it the server now skips.
	UnnamedFailed bool
	// ForgetStmt: pgmux's PREPARE of Head.Stmt failed, the server's cache forgets it;
	// StaleStmt: the client's EXECUTE of Head.Stmt met a changed plan, it is prepared anew.
	ForgetStmt, StaleStmt bool
	Refused               bool // a hidden settings query failed (proxy/settings_link.go settingsRefused)
	// Rename: the error is of the client's Bind or Describe sent under pgmux's name for
	// its statement: pgmux's name in it becomes RenameTo ("" for the unnamed statement).
	Rename   bool
	RenameTo string
	Skip     bool // the server skips to the next Sync: retire what it skips (Queue.SkipToSync)
}

// ErrorRule decides what an ErrorResponse does (see ErrStep).
func ErrorRule[S, F, D any](f ErrFacts[S, F, D]) ErrStep {
	var r ErrStep
	h, ok := &f.Head, f.Queued
	r.DropErr = f.DropErr
	if !ok {
		return r // nothing queued: the client sees it as it is
	}
	r.ReqErr = !h.Hide
	// check: pgmux's check, in a request of its own, of a statement whose Parse it
	// answered itself (Probe, proxy/deferred.go probeDeferred): its error only tells
	// pgmux the statement was never the client's.
	check := h.Kind == 'P' && h.Hide && h.Probe
	switch {
	case h.ShowErr:
		// pgmux's hidden PREPARE before the client's EXECUTE: its error is the one the
		// client sees, and the EXECUTE's that follows is dropped.
		r.DropErr = true
	case h.Kind == 'Q' && h.Hide:
		r.Hide = true
	case h.Kind == 'Q' && f.DropErr:
		r.DropErr, r.Hide = false, true // that EXECUTE's own error
	case check:
		r.Hide = true
	}
	r.CheckFailed = h.Check
	switch {
	case h.Hold:
		r.Hold = true
	case h.Kind == 'Q' && !h.Hide && f.Held:
		r.UseHeld = true
	}
	// The client's Parse or PREPARE failed or, for a Parse pgmux answered itself, the
	// statement's first preparation on a server was refused for its text: it is not the
	// client's. Refused for anything else (25P02 in a failed transaction, a lock
	// timeout, a cancel), it says nothing of the Parse PostgreSQL would have accepted:
	// the statement stays unchecked and is prepared again at its next use.
	r.RegFailed = h.Reg != nil && (h.Kind == 'Q' || !h.Hide || !f.RegChecked && f.Rejected)
	r.UnnamedFailed = h.Kind == 'P' && !h.Hide && !h.Fake && h.Seq != 0
	if h.Kind == 'Q' && h.Stmt != "" && h.Setting == 0 && f.Known {
		switch {
		case h.Hide:
			r.ForgetStmt = true
		case f.StaleCode || f.Gone:
			r.StaleStmt = true
		}
	}
	r.Refused = h.Hide && h.Setting != 0
	if h.Fix == nil && h.Def != nil && (h.Kind == 'B' || h.Kind == 'D') && h.Stmt != "" {
		r.Rename = true
		if !h.Anon {
			r.RenameTo = f.DefName
		}
	}
	r.Skip = ErrorSkipsToSync(h.Kind)
	switch {
	case r.Hold || !r.Hide:
	case !h.Hide, check:
		r.Report = ReportQuiet
	case h.Setting != 0:
		r.Report = ReportSetting
	default:
		r.Report = ReportOwn
	}
	return r
}

// ParseRejected reports whether an error with SQLSTATE code, the answer to a Parse, says
// the statement's text itself was refused, so PostgreSQL would have refused the client's
// Parse of it too: syntax errors and undefined or ambiguous objects (class 42), data
// errors of its constants (22), unsupported features (0A), missing schemas (3F) and
// program limits (54). The others (25P02 in a failed transaction, 55P03 lock timeouts,
// 57014 cancels, 40001 and 40P01, 53xxx, 08xxx, XX000...) are of the moment the server
// met it.
func ParseRejected(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "42", "22", "0A", "3F", "54":
		return true
	}
	return false
}

// ErrCode returns the SQLSTATE code of ErrorResponse m (its whole message, header
// included), "" when it has none.
func ErrCode(m []byte) string {
	for b := m[min(len(m), 5):]; len(b) > 1 && b[0] != 0; {
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			break
		}
		if b[0] == 'C' {
			return string(b[1 : 1+end])
		}
		b = b[2+end:]
	}
	return ""
}
