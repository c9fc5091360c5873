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
// blocked preparing. Such a statement is checked on the next server the client links
// (probeDeferred): if PostgreSQL would have refused it, the client never had it, and its
// Bind gets 26000 and a Parse of its name is no duplicate. A Close goes to the server
// when a recorded Parse is in front of it, which the server may refuse.

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
		s.unnamed.endRequest(s.rd.Seq())
	case 'Q':
		s.queryDrops()
		return false, nil
	case 'F':
		s.unnamed.endRequest(0)
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
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			return false, nil
		}
		name, query, types := f.First(body), f.Second(body), f.Rest(body)
		if len(name) == 0 || s.lookupStmt(name) != nil {
			return false, nil // a duplicate: the server gives PostgreSQL's error in order
		}
		def := s.register(string(name), string(query), types)
		s.deferred = append(s.deferred, deferredOp{typ: 'P', def: def})
		s.mu.Lock()
		s.ops.parses++
		s.mu.Unlock()
	case 'C':
		kind, name, ok := link.TargetFields(body)
		if !ok || kind != 'S' || len(name) == 0 || s.deferredParse() {
			// Behind a recorded Parse, which the server may refuse, it goes to the
			// server with it: PostgreSQL skips a Close after an error, and the name
			// stays the client's (closeNamed drops it when the server completes it).
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

// deferredParse reports whether a Parse is among the recorded operations.
func (s *Session) deferredParse() bool {
	for _, op := range s.deferred {
		if op.typ == 'P' {
			return true
		}
	}
	return false
}

// answerDeferred sends the completions of the recorded operations, and ReadyForQuery
// for a Sync; the client holds no server, so it is idle. The statements whose Parse it
// answers are checked on the next server the client links (probeDeferred).
func (s *Session) answerDeferred(sync bool) error {
	b := s.scratch[:0]
	for _, op := range s.deferred {
		if op.typ == 'P' {
			op.def.answered = true
			s.clears.probeDue = true
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
	if len(ops) == 0 {
		return nil
	}
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

// probable reports whether probeDeferred checks def: not a statement whose text pgmux
// rewrites (a SQL EXECUTE or PREPARE sent by Parse) or the server has under the
// client's name.
func (d *stmtDef) probable() bool { return !d.own && !d.sql && d.clear.exec == nil }

// probeDeferred checks, on c, the statements whose Parse pgmux answered itself
// (answerDeferred), before anything of the client's request: PostgreSQL answers a later
// Parse of such a name with 42P05 only if it accepted the first, and gives the name to
// the new one if it refused it ("P(d, 'selec') S" then "P(d, 'select 8') S": 42601, then
// ParseComplete). It runs when the client links a server, which is idle then, so that
// the check is done before the client can open a transaction block or start a request,
// where neither a failing Parse nor a Sync of pgmux's could be slipped in without
// changing what the client's own messages do. Each statement is prepared as at its
// first use (ensure), marked Probe: the error rule hides its error, and marks the
// statement failed when the server refused its text. A hidden Sync ends the check. It
// is not waited for: the statement is prepared on c for the client's Bind, which the
// server answers with 26000 (under the client's name) if the check failed, as
// PostgreSQL answers a Bind of a statement it refused; only a Parse of the name waits
// for it (awaitProbe).
func (s *Session) probeDeferred(c *pool.Conn) error {
	if !s.clears.probeDue {
		return nil
	}
	s.clears.probeDue = false
	b := s.scratch[:0]
	var es []expect
	for _, def := range s.stmts {
		if !def.unsure() || !def.probable() {
			continue
		}
		var pre []expect
		b, pre, _ = s.ensure(c, def, b)
		if len(pre) == 0 {
			def.checked.Store(true) // on the server already: a Parse of its text succeeded there
			continue
		}
		pre[len(pre)-1].Probe = true
		es = append(es, pre...)
	}
	if len(es) == 0 {
		return nil
	}
	b = append(b, 'S', 0, 0, 0, 4)
	es = append(es, expect{Kind: 'S', Hide: true})
	s.mu.Lock()
	s.q.wakeChan() // made before the answers can come: awaitProbe waits on it
	s.mu.Unlock()
	s.flushNow = true // a Parse of a name may wait for the answer
	err := s.send(c, b, es...)
	s.keepScratch(b)
	return err
}

// awaitProbe waits for the server's answer to the check of def (probeDeferred), when it
// is still unanswered: until then a Parse of its name cannot tell whether it is a
// duplicate. Not on the client loop (loopable sends such a Parse to the goroutine),
// which may be the server's reader.
func (s *Session) awaitProbe(c *pool.Conn, def *stmtDef) {
	if !def.unsure() || !s.probing(def) {
		return
	}
	if err := c.Wr.Flush(); err != nil {
		return // the link ends: the client is told
	}
	s.awaitUntil(func() bool { return !def.unsure() || !s.probing(def) })
}

// probing reports whether a check of def is queued on the link.
func (s *Session) probing(def *stmtDef) bool {
	found := false
	s.mu.Lock()
	s.q.each(func(e expect) { found = found || e.Probe && e.Reg == def })
	s.mu.Unlock()
	return found
}
