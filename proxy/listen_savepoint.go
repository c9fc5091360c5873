package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// Savepoints in the UNLISTEN tracking (listen_tx.go). PostgreSQL keeps a transaction's
// pending LISTEN/UNLISTEN actions per subtransaction (async.c): ROLLBACK TO SAVEPOINT
// drops only those since the savepoint (which stays, empty), RELEASE folds a savepoint's
// into the one around it, and COMMIT applies what is left. So the tracking notes, besides
// the UNLISTENs, the statements that move those bounds — SAVEPOINT, RELEASE, ROLLBACK TO,
// and COMMIT and ROLLBACK of the whole transaction — and follows them as they complete:
// each savepoint is a mark, the number of UNLISTENs ran before it.
//
// A savepoint the tracking did not see (made while nothing was pending, so before any
// UNLISTEN of the transaction) is at mark 0: a ROLLBACK TO it drops them all, a RELEASE
// of it drops every mark, since any mark seen is younger. The tag alone cannot tell a
// ROLLBACK TO from a ROLLBACK (both answer "ROLLBACK"), hence the noting.

// txOp is what a noted statement does when it completes.
type txOp uint8

const (
	opUnlisten   txOp = iota // UNLISTEN, UNLISTEN *, DISCARD ALL, a DO running them
	opSavepoint              // SAVEPOINT name
	opRelease                // RELEASE [SAVEPOINT] name
	opRollbackTo             // ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name
	opCommit                 // COMMIT, END (answered ROLLBACK in a failed transaction)
	opRollback               // ROLLBACK, ABORT
)

// savepointMark is a savepoint of the open transaction: its name and how many of the
// transaction's UNLISTENs had completed when it was made.
type savepointMark struct {
	name string
	at   int
}

// txAct returns what a statement does to the tracking's bounds, if anything: st is one
// that unlistenActs does not take as an UNLISTEN.
func txAct(st *sqlscan.Statement) (unlistenAct, bool) {
	switch st.Kind {
	case sqlscan.KindCommit:
		return unlistenAct{tag: "COMMIT", op: opCommit}, true
	case sqlscan.KindRollback:
		return unlistenAct{tag: "ROLLBACK", op: opRollback}, true
	case sqlscan.KindOther:
		return savepointAct(st.Text)
	}
	return unlistenAct{}, false
}

// savepointWord reports whether q starts with SAVEPOINT, RELEASE or ROLLBACK: a
// statement the tracking notes that sqlscan.LeadOf may not call interesting.
func savepointWord(q string) bool {
	w := sqlscan.FirstKeyword(q)
	return strings.EqualFold(w, "savepoint") || strings.EqualFold(w, "release") || strings.EqualFold(w, "rollback")
}

// savepointAct parses SAVEPOINT, RELEASE and ROLLBACK TO statements.
func savepointAct(text string) (unlistenAct, bool) {
	lx := sqlscan.NewLexer(text)
	tok := lx.Next()
	var a unlistenAct
	switch {
	case tok.IsKeyword("savepoint"):
		a = unlistenAct{tag: "SAVEPOINT", op: opSavepoint}
	case tok.IsKeyword("release"):
		a = unlistenAct{tag: "RELEASE", op: opRelease}
		if tok = lx.Next(); !tok.IsKeyword("savepoint") {
			return savepointName(a, tok, lx)
		}
	case tok.IsKeyword("rollback"):
		a = unlistenAct{tag: "ROLLBACK", op: opRollbackTo}
		if tok = lx.Next(); tok.IsKeyword("work") || tok.IsKeyword("transaction") {
			tok = lx.Next()
		}
		if !tok.IsKeyword("to") {
			return unlistenAct{}, false
		}
		if tok = lx.Next(); !tok.IsKeyword("savepoint") {
			return savepointName(a, tok, lx)
		}
	default:
		return unlistenAct{}, false
	}
	return savepointName(a, lx.Next(), lx)
}

// savepointName completes a with the savepoint name tok, the statement's last token.
func savepointName(a unlistenAct, tok sqlscan.Token, lx *sqlscan.Lexer) (unlistenAct, bool) {
	a.name = strings.Clone(tok.Ident())
	if a.name == "" || lx.Next().Kind != sqlscan.TokEOF {
		return unlistenAct{}, false
	}
	return a, true
}

// completed applies a, a noted statement the server completed with tag. u.mu is held.
func (u *unlistenState) completed(a unlistenAct, tag string) {
	switch a.op {
	case opUnlisten:
		u.ran = append(u.ran, a)
	case opSavepoint:
		u.marks = append(u.marks, savepointMark{name: a.name, at: len(u.ran)})
	case opRelease:
		u.marks = u.marks[:max(u.mark(a.name), 0)]
	case opRollbackTo:
		if i := u.mark(a.name); i >= 0 {
			u.ran = u.ran[:u.marks[i].at]
			u.marks = u.marks[:i+1]
		} else {
			u.ran, u.marks = nil, nil
		}
	case opCommit:
		u.ended(tag == "COMMIT")
	case opRollback:
		u.ended(false)
	}
}

// ended ends the open transaction: committed, its UNLISTENs take effect. u.mu is held.
func (u *unlistenState) ended(committed bool) {
	if committed {
		u.commit = append(u.commit, u.ran...)
	}
	u.ran, u.marks = nil, nil
}

// mark is the index of the youngest savepoint named name, or -1. u.mu is held.
func (u *unlistenState) mark(name string) int {
	for i := len(u.marks) - 1; i >= 0; i-- {
		if u.marks[i].name == name {
			return i
		}
	}
	return -1
}

// unlistenWatching reports whether a listening client's UNLISTENs are pending (sent, or
// ran in the transaction still open): its statements that move savepoints are noted too.
// Session goroutine.
func (s *Session) unlistenWatching() bool {
	b := s.notes.Load()
	if b == nil {
		return false
	}
	b.umu.Lock()
	u := b.u
	b.umu.Unlock()
	if u == nil {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sent) > 0 || len(u.ran) > 0
}
