package proxy

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// A reset of a startup value sent in a simple Query ("RESET DateStyle", "RESET ALL;
// SHOW TimeZone", "SET TimeZone TO DEFAULT"): PostgreSQL resets a parameter the client
// gave at startup to that value, a server pgmux shares resets it to its own default. A
// hidden query after the Query (settings.go) would come too late for statements after
// the reset in the same Query, and its outcome would reach the client after the Query's
// ReadyForQuery. So pgmux puts the re-set in the Query itself, right behind each such
// statement, as a DO block the client does not see: its CommandComplete is dropped
// (expect.HideCC), and error positions in later statements are moved back
// (errFix.shifts). The statements after the reset see the startup value, and since
// PostgreSQL (14 and later) reports changed parameters just before ReadyForQuery, the
// client is told exactly what a direct session tells it. The DO sets each value inside
// its own exception block: one the server will not set again (a parameter that can only
// be set at connection start) is left as the reset left it, as RESET ALL leaves such
// parameters on a direct connection. If the reset fails, the rest of the Query, the DO
// with it, does not run, as the transaction rolls the reset back.
//
// Not done this way, and left to the hidden query after the request: DISCARD ALL (it
// cannot run in the implicit transaction block of a Query of several statements), resets
// inside DO blocks, and Queries that also PREPARE, EXECUTE or DEALLOCATE (rewritten by
// sqlprep.go and sqlmulti.go).

// inPlaceTag is the dollar-quote tag of pgmux's DO blocks.
const inPlaceTag = "$pgmux_reset$"

// resetInPlace returns the client's Query text q with the startup values set again
// behind every statement that resets them, the CommandCompletes to hide (bit i: the
// Query's i-th), and the fix for error positions; nil when there is no such statement.
// When the rewrite covers every reset of the request, the hidden query after it is
// dropped. Session goroutine; only for a request that resets a startup value
// (settings.reapplyQuery).
func (s *Session) resetInPlace(q string) (m []byte, hide uint64, fix *errFix) {
	st := s.set.Load()
	if st == nil || strings.Contains(q, inPlaceTag) {
		return nil, 0, nil
	}
	s.mu.Lock()
	resets := st.reapplyQuery != ""
	s.mu.Unlock()
	if !resets {
		return nil, 0, nil
	}
	m, hide, fix, all := resetInPlaceText(st, q)
	if m != nil && all {
		s.mu.Lock()
		st.reapplyQuery = ""
		s.mu.Unlock()
	}
	return m, hide, fix
}

// resetInPlaceText is resetInPlace's rewrite, without a session; all reports that no
// reset can hide in a DO block of the client's.
func resetInPlaceText(st *settings, q string) (m []byte, hide uint64, fix *errFix, all bool) {
	sts := sqlscan.Scan(q)
	if len(sts) == 0 || len(sts) > 32 {
		return nil, 0, nil, false
	}
	all = true
	for _, stmt := range sts {
		switch stmt.Kind {
		case sqlscan.KindPrepare, sqlscan.KindExecute, sqlscan.KindDeallocate, sqlscan.KindDeallocateAll,
			sqlscan.KindDiscardAll:
			return nil, 0, nil, false
		}
		all = all && stmt.Do == nil
	}
	var b strings.Builder
	last, added, shifted := 0, 0, 0 // bytes of q copied, DO blocks added, runes added
	var shifts []posShift
	for i, stmt := range sts {
		var t setTouch
		switch {
		case stmt.Kind == sqlscan.KindReset:
			t.Ops = []setOp{{Name: strings.ToLower(stmt.Name), Reset: true}}
		case stmt.Kind == sqlscan.KindResetAll:
			t.All = true
		case stmt.Kind == sqlscan.KindSet && stmt.Value == "DEFAULT":
			t.Ops = []setOp{{Name: strings.ToLower(stmt.Name), Reset: true}}
		default:
			continue
		}
		ops := st.resets(&t)
		if len(ops) == 0 {
			continue
		}
		off := int(uintptr(unsafe.Pointer(unsafe.StringData(stmt.Text))) - uintptr(unsafe.Pointer(unsafe.StringData(q))))
		end := off + len(stmt.Text)
		if off < 0 || end > len(q) {
			return nil, 0, nil, false
		}
		b.WriteString(q[last:end])
		ins := "; " + st.reapplyDO(ops)
		b.WriteString(ins)
		last = end
		// Positions past the DO, counted in the server's text, move back by its length.
		at := utf8.RuneCountInString(q[:end]) + shifted
		n := utf8.RuneCountInString(ins)
		shifts = append(shifts, posShift{at: at, delta: n})
		shifted += n
		hide |= 1 << (i + added + 1) // the DO's CommandComplete follows the statement's
		added++
	}
	if added == 0 {
		return nil, 0, nil, false
	}
	b.WriteString(q[last:])
	return wire.Query(nil, b.String()), hide, &errFix{shifts: shifts}, all
}

// reapplyDO is a DO block that sets the startup values of ops again, each on its own:
// one the server will not set leaves the others.
func (st *settings) reapplyDO(ops []setOp) string {
	var b strings.Builder
	b.WriteString("DO " + inPlaceTag + "BEGIN")
	for _, op := range ops {
		start, _ := st.start.Get(op.Name)
		b.WriteString(" BEGIN PERFORM " + setConfigSQL(op.Name, start)[len("SELECT "):] +
			"; EXCEPTION WHEN OTHERS THEN NULL; END;")
	}
	b.WriteString(" END" + inPlaceTag)
	return b.String()
}

// readCC reads a CommandComplete of a Query with pgmux's DO blocks in it (resetInPlace)
// and drops theirs.
func (s *Session) readCC(rd *wire.Reader, n int) error {
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	tag, _, _ := wire.CString(wire.Body(m))
	s.mu.Lock()
	drop := false
	if e := s.q.front(); e != nil && e.Kind == 'Q' && e.HideCC != 0 {
		i := e.CCSeen
		e.CCSeen++
		drop = i < 64 && e.HideCC&(1<<i) != 0 && string(tag) == "DO"
	}
	s.mu.Unlock()
	if drop || s.closed.Load() {
		return nil
	}
	s.ops.out.Add(uint64(len(m)))
	if err := s.wr.Write(m); err != nil {
		s.clientWriteFailed()
	}
	return nil
}
