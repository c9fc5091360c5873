package proxy

import (
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// Parse and Close of named statements need no server while the client holds none: pgmux
// records them, answers a Sync or Flush that ends such a batch itself, and replays them
// on the server the client gets for its next request. Drivers that prepare synchronously
// outside a transaction (pgbench -M prepared, libpq's PQprepare) then never wait for a
// server just to prepare, so a client inside a transaction never waits on one that is
// blocked preparing. A statement's parse error surfaces at its first use instead.

// deferredOp is a Parse or Close recorded while no server was linked.
type deferredOp struct {
	typ byte // 'P' or 'C'
	def *stmtDef
}

// deferLocal handles a message locally when it can; it reports whether it did (and then
// consumed the message).
func (s *Session) deferLocal(typ byte, n int) (bool, error) {
	switch typ {
	case 'P', 'C', 'H':
	case 'S':
		s.unnamed.endRequest()
	case 'Q', 'F':
		s.unnamed.endRequest()
		return false, nil
	default:
		return false, nil
	}
	if (typ == 'S' || typ == 'H') && len(s.deferred) == 0 {
		return false, nil
	}
	if s.linkedServer() != nil {
		return false, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, err
	}
	body := wire.Body(m)
	switch typ {
	case 'P':
		if len(body) > 0 && body[0] == 0 {
			return false, nil // the unnamed statement goes with the request it is in
		}
		name, query, types, ok := link.ParseFields(body)
		if !ok || len(name) == 0 || s.lookupStmt(name) != nil {
			return false, nil // a duplicate: the server gives PostgreSQL's error in order
		}
		def := s.register(string(name), string(query), types)
		s.deferred = append(s.deferred, deferredOp{typ: 'P', def: def})
		s.mu.Lock()
		s.ops.parses++
		s.mu.Unlock()
	case 'C':
		kind, name, ok := link.TargetFields(body)
		if !ok || kind != 'S' || len(name) == 0 {
			return false, nil
		}
		delete(s.stmts, string(name))
		s.deferred = append(s.deferred, deferredOp{typ: 'C'})
	case 'S', 'H':
		if err := s.answerDeferred(typ == 'S'); err != nil {
			return true, err
		}
	}
	_, err = s.rd.Message(n)
	return true, err
}

// answerDeferred sends the completions of the recorded operations, and ReadyForQuery
// for a Sync; the client holds no server, so it is idle.
func (s *Session) answerDeferred(sync bool) error {
	b := s.scratch[:0]
	for _, op := range s.deferred {
		if op.typ == 'P' {
			op.def.answered = true
			b = append(b, '1', 0, 0, 0, 4)
		} else {
			b = append(b, '3', 0, 0, 0, 4)
		}
	}
	if sync {
		b = wire.ReadyForQuery(b, 'I')
	}
	s.deferred = s.deferred[:0]
	err := s.writeClient(b)
	s.keepScratch(b)
	return err
}

// replayDeferred sends the recorded operations to the newly linked server, in order,
// so their completions reach the client from the server.
func (s *Session) replayDeferred(c *pool.Conn) error {
	ops := s.deferred
	s.deferred = s.deferred[:0]
	s.mu.Lock()
	s.Unsynced = true
	s.mu.Unlock()
	for _, op := range ops {
		var err error
		if op.typ == 'P' {
			err = s.parseOn(c, op.def)
		} else {
			err = s.send(c, link.AppendClose(s.scratch[:0], 'S', noopStmt), expect{Kind: 'C'})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unsure reports whether def is a statement whose Parse pgmux answered itself and no
// server has checked yet: PostgreSQL may have refused it, leaving the name free.
func (d *stmtDef) unsure() bool { return d.answered && !d.checked.Load() && !d.failed.Load() }

// checkDeferred checks def, the client's statement of a name it parses again, when pgmux
// answered its Parse itself and no server has checked it: PostgreSQL answers the new
// Parse with 42P05 only if it accepted the first, and gave the name to the new one if it
// refused it ("P(d, 'selec') S" then "P(d, 'select 8') S": 42601, then ParseComplete).
// pgmux prepares def on c in a request of its own (a hidden Sync after it, its error
// shown to no one, marking def failed when the server refuses its text) and waits for
// the answer; it reports whether it did. Only at the start of a request (OpenBefore:
// nothing of it sent before) outside a transaction block: a hidden Sync there ends
// nothing of the client's, and a failure aborts nothing. Elsewhere the Parse is taken as
// a duplicate, as before. Never on the client loop (loopable sends such a Parse to the
// goroutine), which may be c's reader.
func (s *Session) checkDeferred(c *pool.Conn, def *stmtDef) bool {
	if !def.unsure() || def.own || def.sql || def.clear.exec != nil {
		return false
	}
	s.mu.Lock()
	idle := s.TxStatus == 'I' && !s.OpenBefore && !s.ErrSkip && s.Pending == 0 && s.q.len() == 0
	s.mu.Unlock()
	if !idle || s.prep != prepCache {
		return false
	}
	b, es, _ := s.ensure(c, def, s.scratch[:0])
	if len(es) == 0 {
		def.checked.Store(true) // on the server already: a Parse of its text succeeded there
		return false
	}
	es[len(es)-1].Clear = closeClear // a lookup waits for its answer (awaitClears)
	b = append(b, 'S', 0, 0, 0, 4)
	es = append(es, expect{Kind: 'S', Hide: true})
	s.mu.Lock()
	s.q.wakeChan()
	s.mu.Unlock()
	if err := s.send(c, b, es...); err != nil {
		s.keepScratch(b)
		return false
	}
	s.keepScratch(b)
	if err := c.Wr.Flush(); err != nil {
		return false
	}
	s.awaitClears()
	return true
}
