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
