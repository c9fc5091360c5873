package proxy

// What an ErrorResponse from the linked server does, decided without I/O. The relay
// (relay.go Session.onError) gathers the facts (the request the error answers, the
// link's error bookkeeping, what the error says), asks errorRule, and carries out the
// step it returns: it records on the statements and the server's state, rewrites the
// message, retires what the server skips and writes (or swallows) the error.
// errrule_test.go drives the rule with tables of facts alone.

// errFacts is what the rule reads: the queue's head when the error arrived and what the
// session and the message say.
type errFacts struct {
	head   expect // the request the error answers (zero when none is queued)
	queued bool   // a request was queued
	// regChecked: head.reg, a statement pgmux answered the Parse of itself, was parsed
	// fine on a server before (stmtDef.checked).
	regChecked bool
	dropErr    bool // the client's next error is a consequence of one it was shown
	held       bool // an error of pgmux's preparation before a Query is held (heldErr)
	known      bool // the server's state is known (linkOf): its statement cache can be told
	// staleCode: the error says a cached plan must not change result type (planChanged);
	// gone: it says a type a cached plan used no longer exists (lookupFailed).
	staleCode, gone bool
}

// errReport is how an error the client does not see is accounted for.
type errReport uint8

const (
	reportNone    errReport = iota // the client sees the error, or it is held
	reportQuiet                    // the client's EXECUTE after pgmux's failed PREPARE: already told
	reportSetting                  // pgmux's settings query: settingsRefused has it, logRefused says it
	reportOwn                      // pgmux's own query failed: logged (but for failover's abort)
)

// errStep is what the relay does with one ErrorResponse.
type errStep struct {
	hide    bool // the client does not see the error (report says why)
	report  errReport
	dropErr bool // the new value of the session's dropErr
	// hold: keep a copy as the held error (sqlmulti.go), shown in place of the 26000 the
	// client's EXECUTE gets; useHeld: this error is that EXECUTE's, so an undefined-
	// statement error is replaced by the held one; the held error is dropped after it.
	hold, useHeld bool
	reqErr        bool // the client's request failed: a reset in it may roll back (settings.go)
	checkFailed   bool // the state check failed: the client stays pinned (sticky.go)
	regFailed     bool // head.reg is not the client's statement: mark it failed
	// forgetStmt: pgmux's PREPARE of head.stmt failed, the server's cache forgets it;
	// staleStmt: the client's EXECUTE of head.stmt met a changed plan, it is prepared anew.
	forgetStmt, staleStmt bool
	refused               bool // a hidden settings query failed (settings_link.go settingsRefused)
	// rename: the error is of the client's Bind or Describe sent under pgmux's name for
	// its statement: pgmux's name in it becomes renameTo ("" for the unnamed statement).
	rename   bool
	renameTo string
	skip     bool // the server skips to the next Sync: retire what it skips (skipToSync)
}

// errorRule decides what an ErrorResponse does (see errStep).
func errorRule(f errFacts) errStep {
	var r errStep
	h, ok := f.head, f.queued
	r.dropErr = f.dropErr
	if !ok {
		return r // nothing queued: the client sees it as it is
	}
	r.reqErr = !h.hide
	switch {
	case h.showErr:
		// pgmux's hidden PREPARE before the client's EXECUTE: its error is the one the
		// client sees, and the EXECUTE's that follows is dropped.
		r.dropErr = true
	case h.kind == 'Q' && h.hide:
		r.hide = true
	case h.kind == 'Q' && f.dropErr:
		r.dropErr, r.hide = false, true // that EXECUTE's own error
	}
	r.checkFailed = h.check
	switch {
	case h.hold:
		r.hold = true
	case h.kind == 'Q' && !h.hide && f.held:
		r.useHeld = true
	}
	// The client's Parse or PREPARE failed or, for a Parse pgmux answered itself, the
	// statement's first preparation on a server did: it is not the client's.
	r.regFailed = h.reg != nil && (h.kind == 'Q' || !h.hide || !f.regChecked)
	if h.kind == 'Q' && h.stmt != "" && h.setting == 0 && f.known {
		switch {
		case h.hide:
			r.forgetStmt = true
		case f.staleCode || f.gone:
			r.staleStmt = true
		}
	}
	r.refused = h.hide && h.setting != 0
	if h.fix == nil && h.def != nil && (h.kind == 'B' || h.kind == 'D') && h.stmt != "" {
		r.rename = true
		if !h.anon {
			r.renameTo = h.def.name
		}
	}
	r.skip = errorSkipsToSync(h)
	switch {
	case r.hold || !r.hide:
	case !h.hide:
		r.report = reportQuiet
	case h.setting != 0:
		r.report = reportSetting
	default:
		r.report = reportOwn
	}
	return r
}
