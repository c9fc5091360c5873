package proxy

import (
	"slices"
	"strings"

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
// Close of each of those names and a Sync remove them again, unless the Query PREPAREs
// the name itself (the client, pinned for it, now has its own statement there).
//
// The Query's DEALLOCATEs forget the client's statements when the server completes them
// (stmtclear.go). If pgmux's preparation of a statement fails (DDL since made it
// invalid), its error is held and replaces the 26000 the client's EXECUTE then gets, as
// PostgreSQL reports the statement's error when it executes it.

// sqlName is one client statement a Query names.
type sqlName struct {
	name string
	def  *stmtDef
	exec bool // executed (needs the statement itself), not only deallocated or prepared
}

// byName is what sqlByName sends around a Query: the client's statements it names, the
// drops of its DEALLOCATEs, in order, and the names it PREPAREs.
type byName struct {
	names    []sqlName
	drops    []clearDrop
	prepared []string
}

// namesIn reports the client's statements a Query EXECUTEs, DEALLOCATEs or PREPAREs;
// nil when there is none, or when the Query comes in the middle of an extended-protocol
// batch (pgmux's Sync would end it) and goes as written. It runs before the Query is
// marked as clearing (inspectQuery), whose answer it would otherwise wait for. l is
// sqlscan.LeadOf(q).
func (s *Session) namesIn(q string, l sqlscan.Lead) *byName {
	if !namesStatements(l) {
		return nil
	}
	s.mu.Lock()
	midBatch := s.ErrSkip || s.Unsynced
	s.mu.Unlock()
	if midBatch {
		return nil
	}
	var p byName
	cleared := false // a DEALLOCATE ALL or DISCARD ALL before the statement
	for _, st := range sqlscan.Scan(q) {
		if st.Kind == sqlscan.KindDeallocateAll || st.Kind == sqlscan.KindDiscardAll {
			cleared = true
		}
		sq, ok := sqlStatementOf(st.Text)
		if !ok {
			continue
		}
		name := strings.Clone(sq.Name) // q views the reader's buffer
		def := s.lookupStmt([]byte(name))
		switch sq.Kind {
		case sqlscan.KindDeallocate:
			p.drops = append(p.drops, clearDrop{name: name, def: def})
		case sqlscan.KindPrepare:
			p.prepared = append(p.prepared, name)
			if s.prep == prepUnnamed {
				// In unnamed mode the PREPARE goes as written: a new name is the client's
				// own statement once the server completes it. After a DEALLOCATE ALL in
				// the same Query it is not registered (registered now, it would count as
				// made before the clear and be dropped with it).
				d := clearDrop{name: name, prep: true}
				if def == nil && !cleared {
					d.def = s.keepOwn(name, sq)
					def = d.def
				}
				p.drops = append(p.drops, d)
			}
		}
		if def == nil || def.own {
			continue // an own statement is on the server under its name already
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
	if len(p.names) == 0 {
		for _, d := range p.drops {
			if d.def != nil {
				return &p // a PREPARE or DEALLOCATE of an own statement: noted, the Query goes as written
			}
		}
		return nil
	}
	return &p
}

// sqlByName sends the client's Query m with what p needs around it. The Query's expect
// is already queued.
func (s *Session) sqlByName(c *pool.Conn, m []byte, p *byName) error {
	names, drops, prepared := p.names, p.drops, p.prepared
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
	b = append(b, 'S', 0, 0, 0, 4)
	before = append(before, expect{Kind: 'S', Hide: true})
	for _, sql := range sqlPreps {
		b = wire.Query(b, sql)
		before = append(before, expect{Kind: 'Q', Hide: true, Hold: true})
	}
	b = append(b, m...)
	for _, n := range names {
		if !slices.Contains(prepared, n.name) {
			b = link.AppendClose(b, 'S', n.name)
			after = append(after, expect{Kind: 'C', Hide: true})
		}
	}
	if len(after) > 0 {
		b = append(b, 'S', 0, 0, 0, 4)
		after = append(after, expect{Kind: 'S', Hide: true, Settles: true})
	}
	s.mu.Lock()
	if x := linkOf(c); x != nil {
		for _, n := range names {
			x.stmts.MarkStale(n.name) // a client name that is one of pgmux's: prepare it anew
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
// unless the same Query deallocated the name before it: then the PREPARE makes a
// statement on the server, which pins. l is sqlscan.LeadOf(q).
func (s *Session) byNameNeed(q string, l sqlscan.Lead, pin pinReason, release bool) (pinReason, bool) {
	if !namesStatements(l) {
		return pin, release
	}
	prepares, freedAll := false, false
	var freed []string // names the Query deallocated so far (views of q)
	for _, st := range sqlscan.Scan(q) {
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
