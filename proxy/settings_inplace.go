package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// A reset of a startup value sent in a simple Query ("RESET DateStyle", "RESET ALL;
// SHOW TimeZone", "SET TimeZone TO DEFAULT", "SET LOCAL TimeZone TO DEFAULT", whose
// re-set is a SET LOCAL): PostgreSQL resets a parameter the client
// gave at startup to that value, a server pgmux shares resets it to its own default. A
// hidden query after the Query (settings.go) would come too late for statements after
// the reset in the same Query, and its outcome would reach the client after the Query's
// ReadyForQuery. So pgmux puts the re-set in the Query itself, right behind each such
// statement, as a statement the client does not see: its CommandComplete is dropped
// (expect.HideCC), and error positions in later statements are moved back
// (errFix.shifts). The statements after the reset see the startup value, and since
// PostgreSQL (14 and later) reports changed parameters just before ReadyForQuery, the
// client is told exactly what a direct session tells it. The re-set of one value is a
// SET, which takes no snapshot, as the RESET takes none: a transaction may still switch
// to read-write or serializable after both, or move off a standby (replica_move.go).
// Outside a transaction block, after RESET ALL it is a DO block setting each value inside
// its own exception block: one the server will not set again (a parameter that can only
// be set at connection start) is left as the reset left it, as RESET ALL leaves such
// parameters on a direct connection; a list setting such as search_path gets the DO
// too, which keeps the list's text as the client wrote it. Inside a transaction block,
// where the DO's snapshot would make PostgreSQL refuse those switches (25001), both are
// SETs (link.reapplyIn): a list is written item by item (its text as the client wrote
// it comes back with the read-back after the block), and a startup value the server no
// longer takes (its tablespace dropped since) fails the client's RESET, where
// PostgreSQL's does not check it again (TestResetOfRefusedStartupValue tells why pgmux
// cannot). If the reset fails, the rest of the Query, the re-set with it, does not run,
// as the transaction rolls the reset back.
//
// Not done this way, and left to the hidden query after the request: DISCARD ALL (it
// cannot run in the implicit transaction block of a Query of several statements), resets
// inside DO blocks, and Queries that also PREPARE, EXECUTE or DEALLOCATE (rewritten by
// sqlprep.go and sqlmulti.go).
//
// The rewrite is link.ResetInPlace (pure, link/settings.go); here are the session's
// side of it and the reading of the answers.

// resetInPlace returns the client's Query text q with the startup values set again
// behind every statement that resets them, the CommandCompletes to hide (bit i: the
// Query's i-th), and the fix for error positions; nil when there is no such statement.
// When the rewrite covers every reset of the request, the hidden query after it is
// dropped. Session goroutine; only for a request that resets a startup value
// (settings.reapplyQuery).
func (s *Session) resetInPlace(q string) (m []byte, hide uint64, fix *errFix) {
	st := s.set.Load()
	if st == nil {
		return nil, 0, nil
	}
	// Whether a reset is pending first: the scan of q for the tag costs more than the
	// lock, and nearly every Query of a client with startup settings has none pending.
	s.mu.Lock()
	resets, inTx := st.reapplyQuery != "", s.TxStatus != 'I'
	s.mu.Unlock()
	if !resets || strings.Contains(q, link.InPlaceTag) {
		return nil, 0, nil
	}
	m, hide, shifts, all := link.ResetInPlace(&st.Settings, q, inTx)
	if m != nil {
		fix = &errFix{shifts: shifts}
	}
	if m != nil && all {
		s.mu.Lock()
		st.reapplyQuery = ""
		s.mu.Unlock()
	}
	return m, hide, fix
}

// readCC reads a CommandComplete of a Query with pgmux's re-sets in it (resetInPlace)
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
		drop = i < 64 && e.HideCC&(1<<i) != 0 && (string(tag) == "SET" || string(tag) == "DO")
	}
	s.mu.Unlock()
	s.relayRead(m, drop)
	return nil
}
