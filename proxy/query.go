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
// pgmux tracks.
func (s *Session) forwardQuery(c *pool.Conn, n int) error {
	m, err := s.rd.Message(n)
	if err != nil {
		return err
	}
	if l := s.linkLog(c); l != nil {
		l.skip('Q') // never retried
	}
	text, _, err := wire.CString(wire.Body(m))
	if err == nil && s.prep == prepCache {
		s.inspectQuery(c, text)
	}
	if err := c.Wr.Write(m); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// inspectQuery marks the server's cached statements stale when the query may drop them
// (DISCARD ALL, DEALLOCATE ALL): their next use closes and prepares them again, which is
// right whether or not the query succeeded.
func (s *Session) inspectQuery(c *pool.Conn, text []byte) {
	if len(text) == 0 {
		return
	}
	// A view of the reader's buffer, valid for this call: nothing here keeps it.
	q := unsafe.String(&text[0], len(text))
	if !sqlscan.MaybeInteresting(q) {
		return
	}
	for _, st := range sqlscan.Scan(q) {
		switch st.Kind {
		case sqlscan.KindDiscardAll, sqlscan.KindDeallocateAll:
			s.mu.Lock()
			if x, ok := c.Attach.(*serverState); ok {
				for name := range x.stmts.items {
					x.stmts.markStale(name)
				}
			}
			s.mu.Unlock()
			return
		}
	}
}
