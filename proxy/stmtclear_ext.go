package proxy

import (
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// DISCARD ALL, DEALLOCATE ALL and DEALLOCATE name sent with the extended protocol (a
// Parse of that text, then Bind, Execute and Sync, as pgx's ExecParams, JDBC and psycopg
// send every statement) act on the client's statements when the server completes the
// Execute, through the same hand-off as a Query's (stmtclear.go): never when the
// Execute fails or is skipped after an error, and, as in PostgreSQL, whether or not the
// transaction around it commits.
//
// A statement's effect is known from its text at Parse (stmtDef.clear, unnamedStmt.clear),
// carried to the portal at Bind (Session.clearPortals, which holds only portals of such
// statements) and acted on at that portal's Execute:
//   - DISCARD ALL, DEALLOCATE ALL: the Execute clears the client's names when completed,
//     and the server's cached statements are marked stale;
//   - DEALLOCATE [PREPARE] x of a statement the client has: the server, which knows x
//     only under pgmux's name, gets a hidden Close and Parse of an empty statement named
//     x right before the Execute, so the DEALLOCATE succeeds where PostgreSQL's would and
//     x is forgotten when it completes; two DEALLOCATEs of x run in a row, the second
//     fails with 26000 as PostgreSQL's does. For a name the client does not have, the
//     Execute goes on as it is and the server answers 26000 with the client's name.

// notePortal records what executing portal will do to the client's statement names.
// Session goroutine; no allocation unless the statement clears something.
func (s *Session) notePortal(portal []byte, op clearOp) {
	switch {
	case op.any():
		if s.clearPortals == nil {
			s.clearPortals = make(map[string]clearOp)
		}
		s.clearPortals[string(portal)] = op
	case len(s.clearPortals) > 0:
		delete(s.clearPortals, string(portal))
	}
}

// executeClear handles the client's Execute of a portal that clears statement names. It
// reports whether it sent the Execute itself; if not, the caller forwards it. The
// Execute's expect is already queued (account).
func (s *Session) executeClear(c *pool.Conn, n int) (bool, error) {
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, err
	}
	portal, _, err := wire.CString(wire.Body(m))
	if err != nil {
		return false, nil
	}
	op, ok := s.clearPortals[string(portal)]
	if !ok {
		return false, nil
	}
	if op.prep != nil {
		if m, err = s.rd.Message(n); err != nil {
			return false, err
		}
		return true, s.executePrep(c, op.prep, m)
	}
	if op.exec != nil {
		// An EXECUTE of a client statement (sqlexec_ext.go): its errors name pgmux's.
		if fix := op.exec.execFix(); fix != nil {
			s.mu.Lock()
			if e := s.q.tail(); e != nil && e.Kind == 'E' {
				e.Fix = fix
			}
			s.mu.Unlock()
		}
		return false, nil
	}
	var b []byte
	if op.all() {
		s.staleAll(c)
		s.noteClear()
	} else {
		def := s.lookupStmt([]byte(op.name))
		s.mu.Lock()
		skipping := s.ErrSkip
		s.mu.Unlock()
		if def == nil || skipping {
			return false, nil // the server answers 26000 for the client's name, or skips it
		}
		b = link.AppendNoop(s.scratch[:0], op.name)
		s.mu.Lock()
		if x := linkOf(c); x != nil {
			x.stmts.MarkStale(op.name) // a client name that is one of pgmux's: prepare it anew
		}
		s.q.pushBeforeTail(expect{Kind: 'C', Hide: true}, expect{Kind: 'P', Hide: true})
		s.mu.Unlock()
		s.noteDrops([]clearDrop{{name: op.name, def: def}})
	}
	if m, err = s.rd.Message(n); err != nil {
		return false, err
	}
	// The client's next statement message waits for this Execute's answer (applyClears),
	// which the server sends only at a Sync or Flush: a Flush makes it send it now.
	b = append(b, m...)
	b = append(b, 'H', 0, 0, 0, 4)
	if l := s.linkLog(c); l != nil {
		l.Skip('E') // not replayed (retry.go)
	}
	return true, s.writeScratch(c, b)
}
