package proxy

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// SQL EXECUTE, DEALLOCATE and PREPARE of the client's statement names in a Query that
// sqlprep.go does not rewrite: several statements ("EXECUTE p(1); SELECT 2",
// "SELECT 1; DEALLOCATE p"), or any such Query in unnamed mode.
//
// Rewriting each statement would need to know, statement by statement, which names
// still exist when it runs (a DEALLOCATE, DEALLOCATE ALL or failure before it changes
// that). Instead the server is given the client's statements under the client's own
// names, right before the Query, and the Query goes as written: PostgreSQL itself then
// answers every statement as it would on a direct connection, errors naming the
// client's statement with positions in the client's text. In one write, before the
// Query: a Close of each name the Query uses that the client has, and a Parse of the
// statement under that name (an empty statement when the Query only deallocates it or
// prepares it again, which must then fail with 42P05), then a Sync; a statement the
// client made with SQL PREPARE is prepared with a hidden PREPARE. After the Query, a
// Close of each of those names and a Sync remove them again.
//
// The Query's PREPAREs make the client's statements, and its DEALLOCATEs forget them,
// when the server completes them, in statement order (stmtclear.go): a PREPARE an error
// before it kept from running, or a DEALLOCATE ALL after it cleared, leaves the name
// free, as in PostgreSQL. In cache mode the statement is pgmux's, as one a Query of one
// PREPARE makes (sqlprep.go): the server's copy under the client's name is closed after
// the Query too, and the client is not pinned; Bind, EXECUTE and DEALLOCATE of it work
// on any server. In unnamed mode it is an own statement: the server keeps it under the
// client's name and the client, pinned, keeps that server.
//
// A Query with a COPY is handled alike, but for when the names are closed: a Close
// right behind a Query whose COPY FROM STDIN runs would reach the server in its
// copy-in and abort it (08P01, the session lost). Its closes wait on the server
// (serverState.left) and go in front of the next message other than COPY data, Flush
// or Sync (PostgreSQL ignores those two in a copy-in) that reaches that server, from
// this client or, if the link ends at the Query's ReadyForQuery, the next one
// (closeLeft): no client sees what the Query left there.
//
// If pgmux's preparation of a statement fails (DDL since made it invalid), its error is
// held and replaces the 26000 the client's EXECUTE then gets, as PostgreSQL reports the
// statement's error when it executes it.

// sqlName is one client statement a Query names.
type sqlName struct {
	name string
	def  *stmtDef
	exec bool // executed (needs the statement itself), not only deallocated or prepared
}

// byName is what sqlByName sends around a Query: the client's statements it names, the
// drops of its DEALLOCATEs and the statements of its PREPAREs, in order, the names it
// PREPAREs, those of them it deallocated before (a DEALLOCATE of the name, DEALLOCATE
// ALL or DISCARD ALL earlier in the Query), and the names closed after it.
type byName struct {
	names    []sqlName
	drops    []clearDrop
	prepared []string
	freed    []string
	after    []string
	copies   bool // the Query has a COPY: the names after are closed later (closeLeft)
}

// namesIn reports the client's statements a Query EXECUTEs, DEALLOCATEs or PREPAREs;
// nil when there is none, or when the Query comes in the middle of an extended-protocol
// batch (pgmux's Sync would end it) and goes as written. It runs before the Query is
// marked as clearing (inspectQuery), whose answer it would otherwise wait for. l is
// sqlscan.LeadOf(q).
//
// Each PREPARE gets the statement it makes, registered when the server completes it
// (stmtclear.go readClear): in cache mode one of pgmux's, like a Query of one PREPARE
// makes (the server's copy under the client's name is closed after the Query), in
// unnamed mode an own statement. A DEALLOCATE of a name PREPAREd earlier in the Query
// drops that statement.
func (s *Session) namesIn(q string, l sqlscan.Lead) *byName {
	if !namesStatements(l) || s.midBatch() {
		return nil
	}
	sts := sqlscan.Scan(q)
	p := byName{copies: copiesIn(sts)}
	var made map[string]*stmtDef // the statements of the Query's PREPAREs so far
	cleared := false             // a DEALLOCATE ALL or DISCARD ALL before the statement
	var deallocated []string     // the names DEALLOCATEd before the statement
	for _, st := range sts {
		if st.Kind == sqlscan.KindDeallocateAll || st.Kind == sqlscan.KindDiscardAll {
			cleared, made = true, nil
		}
		sq, ok := sqlStatementOf(st.Text)
		if !ok {
			continue
		}
		name := strings.Clone(sq.Name) // q views the reader's buffer
		def, mine := made[name]
		if !mine {
			def = s.lookupStmt([]byte(name))
		}
		// Every DEALLOCATE and PREPARE has its entry, in order: the server's answers
		// are matched to them one by one (readClear).
		switch sq.Kind {
		case sqlscan.KindDeallocate:
			p.drops = append(p.drops, clearDrop{name: name, def: def})
			delete(made, name)
			deallocated = append(deallocated, name)
		case sqlscan.KindPrepare:
			p.prepared = append(p.prepared, name)
			if cleared || slices.Contains(deallocated, name) {
				p.freed = append(p.freed, name)
			}
			sq.PrepareBody = strings.Clone(sq.PrepareBody)
			d := clearDrop{name: name, def: s.sqlDef(sq), prep: true, cleared: cleared}
			d.def.own = s.prep == prepUnnamed
			if made == nil {
				made = make(map[string]*stmtDef)
			}
			made[name] = d.def
			p.drops = append(p.drops, d)
		}
		if mine || def == nil || def.own {
			continue // made by the Query, or an own statement: on the server under its name already
		}
		i := 0
		for i < len(p.names) && p.names[i].name != name {
			i++
		}
		if i == len(p.names) {
			p.names = append(p.names, sqlName{name: name, def: def})
		}
		p.names[i].exec = p.names[i].exec || sq.Kind == sqlscan.KindExecute
	}
	p.after = p.closedAfter(s.prep == prepCache)
	if len(p.names) == 0 && len(p.after) == 0 {
		for _, d := range p.drops {
			if d.def != nil {
				return &p // a PREPARE or DEALLOCATE of a client statement: noted, the Query goes as written
			}
		}
		return nil
	}
	return &p
}

// closedAfter returns the names closed on the server after the Query: those of the
// client's statements given to it, and with all, those the Query PREPAREs too (cache
// mode: the client's statements are pgmux's, prepared where they run). Otherwise a name
// the Query PREPAREs stays: the client, pinned for it, has its own statement there.
//
// But a name given to the server that the Query PREPAREs without deallocating it first
// is closed too: that PREPARE fails (42P05, or an error in its statement, or one before
// it), and what stays is pgmux's copy of the client's statement, on a server the client
// is not pinned to: another client given it would get 42P05 for its own PREPARE of the
// name, and run the copy with EXECUTE. One deallocated first may make the client's
// statement, so it stays; the client is pinned (byNameNeed), and when an error stopped
// the Query before the DEALLOCATE, the copy keeps it pinned (stateCheckSQL).
func (p *byName) closedAfter(all bool) []string {
	var after []string
	for _, n := range p.names {
		if all || !slices.Contains(p.freed, n.name) {
			after = append(after, n.name)
		}
	}
	if all {
		for _, name := range p.prepared {
			if !slices.Contains(after, name) {
				after = append(after, name)
			}
		}
	}
	return after
}

// copiesIn reports whether one of the statements is a COPY: a Close sent behind a Query
// that runs COPY FROM STDIN would reach the server in its copy-in and abort it. (COPY TO
// is counted too: its closes wait for the next message all the same.)
func copiesIn(sts []sqlscan.Statement) bool {
	for _, st := range sts {
		if sqlscan.NewLexer(st.Text).Next().IsKeyword("copy") {
			return true
		}
	}
	return false
}

// queryCopies reports whether the client's Query of n bytes, about to be forwarded, may
// run a COPY (copiesIn); one too long to look at may.
func (s *Session) queryCopies(n int) (bool, error) {
	if n > maxInspect {
		return true, nil
	}
	q, err := s.peekQuery(n)
	if err != nil || q == "" {
		return false, err
	}
	return copiesIn(sqlscan.Scan(q)), nil
}

// peekQuery returns the text of the client's Query of n bytes, not consumed: a view of
// the reader's buffer, valid until the message is read; "" when it has none.
func (s *Session) peekQuery(n int) (string, error) {
	m, err := s.rd.Peek(n)
	if err != nil {
		return "", err
	}
	text, _, err := wire.CString(wire.Body(m))
	if err != nil || len(text) == 0 {
		return "", nil
	}
	return unsafe.String(&text[0], len(text)), nil
}

// midBatch reports whether the client's Query comes in the middle of an extended-protocol
// batch: it goes as written, as a Sync of pgmux's would end the batch.
func (s *Session) midBatch() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ErrSkip || s.Unsynced
}

// sqlByName sends the client's Query m with what p needs around it. The Query's expect
// is already queued.
func (s *Session) sqlByName(c *pool.Conn, m []byte, p *byName) error {
	names, drops := p.names, p.drops
	b := s.scratch[:0]
	var before, after []expect
	var sqlPreps []string
	for _, n := range names {
		b = link.AppendClose(b, 'S', n.name)
		before = append(before, expect{Kind: 'C', Hide: true})
		switch {
		case n.exec && n.def.sql:
			sqlPreps = append(sqlPreps, "PREPARE "+sqlscan.QuoteIdent(n.name)+n.def.sqlTypes+" AS "+n.def.query)
		case n.exec:
			b = n.def.parseMsg(b, n.name)
			before = append(before, expect{Kind: 'P', Hide: true, Hold: true})
		default:
			b = link.AppendEmptyParse(b, n.name)
			before = append(before, expect{Kind: 'P', Hide: true})
		}
	}
	if len(names) > 0 {
		b = append(b, 'S', 0, 0, 0, 4)
		before = append(before, expect{Kind: 'S', Hide: true})
	}
	for _, sql := range sqlPreps {
		b = wire.Query(b, sql)
		before = append(before, expect{Kind: 'Q', Hide: true, Hold: true})
	}
	b = append(b, m...)
	if !p.copies {
		for _, name := range p.after {
			b = link.AppendClose(b, 'S', name)
			after = append(after, expect{Kind: 'C', Hide: true})
		}
	}
	if len(after) > 0 {
		b = append(b, 'S', 0, 0, 0, 4)
		after = append(after, expect{Kind: 'S', Hide: true, Settles: true})
	}
	s.mu.Lock()
	if p.copies && len(p.after) > 0 {
		x := s.stateOf(c) // under mu: the reader may look at a fresh Tracker (serverFor)
		x.left = append(x.left, p.after...)
	}
	if x := linkOf(c); x != nil {
		// A client name that is one of pgmux's: prepare it anew.
		for _, n := range names {
			x.stmts.MarkStale(n.name)
		}
		for _, name := range p.prepared {
			x.stmts.MarkStale(name)
		}
	}
	s.q.pushBeforeTail(before...)
	s.mu.Unlock()
	if len(drops) > 0 {
		s.noteDrops(drops) // on the client's Query, the tail until after is queued
	}
	s.mu.Lock()
	for _, e := range after {
		s.q.push(&e)
	}
	s.mu.Unlock()
	return s.writeScratch(c, b)
}

// byNameNeed is sqlNeed for a Query sqlByName handles: an EXECUTE does what its
// statement does, and a PREPARE of a name the client has fails (42P05) and pins nothing,
// unless the same Query deallocated the name before it: then, in unnamed mode, the
// PREPARE makes a statement on the server, which pins. In cache mode a PREPARE namesIn
// records pins nothing (pgmux's statement, as for a Query of one PREPARE). l is
// sqlscan.LeadOf(q).
func (s *Session) byNameNeed(q string, l sqlscan.Lead, pin pinReason, release bool) (pinReason, bool) {
	if !namesStatements(l) {
		return pin, release
	}
	sts := sqlscan.Scan(q)
	recorded := s.prep == prepCache && !s.midBatch()
	prepares, freedAll := false, false
	var freed []string // names the Query deallocated so far (views of q)
	for _, st := range sts {
		if st.Kind == sqlscan.KindDeallocateAll || st.Kind == sqlscan.KindDiscardAll {
			freedAll = true
		}
		sq, ok := sqlStatementOf(st.Text)
		if !ok {
			if st.Kind == sqlscan.KindPrepare || st.Do != nil {
				prepares = true
			}
			continue
		}
		def := s.lookupStmt([]byte(sq.Name))
		switch {
		case sq.Kind == sqlscan.KindDeallocate:
			freed = append(freed, sq.Name)
		case sq.Kind == sqlscan.KindPrepare && recorded:
		case sq.Kind == sqlscan.KindPrepare && (def == nil || freedAll || slices.Contains(freed, sq.Name)):
			prepares = true
		case sq.Kind == sqlscan.KindExecute && def != nil:
			pin, release = pin|def.pin, release || def.release
		}
	}
	if !prepares {
		pin &^= pinPrepare
	}
	return pin, release
}

// namesStatements reports whether a text with Lead l may hold a PREPARE, EXECUTE or
// DEALLOCATE: the scanner's quick check, which sees those keywords at a statement's
// start, or an EXPLAIN first (EXPLAIN EXECUTE after another statement is not seen, and
// goes as written).
func namesStatements(l sqlscan.Lead) bool {
	return l.Interesting || l.Keyword == sqlscan.KwExplain
}

// closeLeft sends, in front of the client message typ about to reach c, the Closes of
// the names a Query with a COPY left on c (sqlByName) and a Sync, unless typ is COPY
// data, or a Flush or Sync, which may still be in the copy-in of that Query (PostgreSQL
// ignores both there; neither names a statement, so the closes can wait for the next
// message). The message's expect, when
// account queued one, stays behind theirs. The session goroutine, holding c's write
// lock where others may write (forwardLocked).
func (s *Session) closeLeft(c *pool.Conn, typ byte) error {
	switch typ {
	case 'd', 'c', 'f', 'H', 'S', 'X':
		return nil
	}
	x := linkOf(c)
	if x == nil || len(x.left) == 0 {
		return nil
	}
	names := x.left
	x.left = nil
	b := s.scratch[:0]
	es := make([]expect, 0, len(names)+1)
	for _, name := range names {
		b = link.AppendClose(b, 'S', name)
		es = append(es, expect{Kind: 'C', Hide: true})
	}
	b = append(b, 'S', 0, 0, 0, 4)
	es = append(es, expect{Kind: 'S', Hide: true})
	// account queued the expect of a Query, FunctionCall or Execute, and of the other
	// extended-protocol messages where pgmux does not rewrite them (prepPass).
	queued := typ == 'Q' || typ == 'F' || typ == 'E' || s.prep == prepPass
	s.mu.Lock()
	if queued {
		s.q.pushBeforeTail(es...)
	} else {
		for i := range es {
			s.q.push(&es[i])
		}
	}
	s.mu.Unlock()
	return s.writeScratch(c, b)
}
