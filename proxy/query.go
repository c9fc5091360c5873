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
// pgmux tracks and rewriting SQL PREPARE, EXECUTE and DEALLOCATE (sqlprep.go).
func (s *Session) forwardQuery(c *pool.Conn, n int) error {
	m, err := s.rd.Message(n)
	if err != nil {
		return err
	}
	if l := s.linkLog(c); l != nil {
		l.skip('Q') // never retried
	}
	text, _, err := wire.CString(wire.Body(m))
	if err == nil && len(text) > 0 && s.prep != prepPass {
		// A view of the reader's buffer, valid for this call: nothing here keeps it.
		q := unsafe.String(&text[0], len(text))
		s.noteDDL(q)
		s.inspectQuery(c, q)
		if done, err := s.sqlPrepared(c, q); done || err != nil {
			return err
		}
	}
	if err == nil && s.entry.multi.Load() {
		s.noteCommit(text)
	}
	if err := c.Wr.Write(m); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// inspectQuery handles DISCARD ALL and DEALLOCATE ALL: the server's cached statements
// are marked stale (their next use closes and prepares them again, which is right
// whether or not the query succeeded), and the client's statements are forgotten, as
// PostgreSQL forgets them, when the query will succeed: DISCARD ALL alone outside a
// transaction block, DEALLOCATE ALL anywhere but in a failed transaction.
func (s *Session) inspectQuery(c *pool.Conn, q string) {
	if !sqlscan.MaybeInteresting(q) {
		return
	}
	sts := sqlscan.Scan(q)
	for _, st := range sts {
		switch st.Kind {
		case sqlscan.KindDiscardAll, sqlscan.KindDeallocateAll:
			tx := s.staleAll(c)
			if (st.Kind == sqlscan.KindDiscardAll && len(sts) == 1 && tx == 'I') ||
				(st.Kind == sqlscan.KindDeallocateAll && tx != 'E') {
				clear(s.stmts)
			}
			return
		}
	}
}

// staleAll marks every statement cached on c stale, and returns the client's transaction
// status as last reported.
func (s *Session) staleAll(c *pool.Conn) (txStatus byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := c.Attach.(*serverState); ok && s.prep == prepCache {
		for name := range x.stmts.items {
			x.stmts.markStale(name)
		}
	}
	return s.txStatus
}
