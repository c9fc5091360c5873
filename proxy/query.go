package proxy

import (
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// maxInspect is the largest simple Query whose text is looked at; larger ones (bulk
// inserts) stream through untouched.
const maxInspect = 64 << 10

// forwardQuery forwards a simple Query, noting statements that wipe server-side state
// pgmux tracks and rewriting SQL PREPARE, EXECUTE and DEALLOCATE (sqlprep.go), or giving
// the server the client's statements under its names (sqlmulti.go).
func (s *Session) forwardQuery(c *pool.Conn, n int) error {
	m, err := s.rd.Message(n)
	if err != nil {
		return err
	}
	if l := s.linkLog(c); l != nil {
		l.Skip('Q') // never retried
	}
	text, _, err := wire.CString(wire.Body(m))
	if err == nil && len(text) > 0 {
		if m2, hide, fix := s.resetInPlace(unsafe.String(&text[0], len(text))); m2 != nil {
			s.mu.Lock()
			if e := s.q.tail(); e != nil && e.Kind == 'Q' && !e.Hide {
				e.HideCC = hide
				if e.Fix == nil {
					e.Fix = fix
				}
			}
			s.mu.Unlock()
			m = m2
		}
	}
	if err == nil && len(text) > 0 {
		// A view of the reader's buffer, valid for this call: nothing here keeps it.
		q := unsafe.String(&text[0], len(text))
		l := s.lead(q)
		s.freeDatabase(q, l)
		if s.prep == prepPass {
			return s.writeQuery(c, m)
		}
		s.noteDDL(q, l)
		if done, err := s.sqlPrepared(c, q, l.Keyword); done || err != nil {
			return err // one PREPARE, EXECUTE or DEALLOCATE of a name: no DISCARD ALL
		}
		p := s.namesIn(q, l)
		s.inspectQuery(c, q, l)
		switch {
		case p != nil && len(p.names) == 0 && len(p.after) == 0:
			s.noteDrops(p.drops)
		case p != nil:
			return s.sqlByName(c, m, p)
		}
	}
	return s.writeQuery(c, m)
}

// writeQuery writes the Query m to the server.
func (s *Session) writeQuery(c *pool.Conn, m []byte) error {
	if err := c.Wr.Write(m); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// inspectQuery handles DISCARD ALL and DEALLOCATE ALL: the server's cached statements
// are marked stale (their next use closes and prepares them again, which is right
// whether or not the query succeeds), and the Query is marked to clear the client's
// statements when the server reports the command complete (stmtclear.go). l is
// sqlscan.LeadOf(q).
func (s *Session) inspectQuery(c *pool.Conn, q string, l sqlscan.Lead) {
	if !l.Interesting {
		return
	}
	for _, st := range sqlscan.Scan(q) {
		switch st.Kind {
		case sqlscan.KindDiscardAll, sqlscan.KindDeallocateAll:
			s.staleAll(c)
			s.noteClear()
			return
		}
	}
}

// staleAll marks every statement cached on c stale.
func (s *Session) staleAll(c *pool.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := linkOf(c); x != nil && s.prep == prepCache {
		x.stmts.MarkAllStale()
	}
}
