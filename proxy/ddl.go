package proxy

import (
	"bytes"

	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Statements prepared before DDL.
//
// pgmux shares one server statement among every client that prepares the same text and
// parameter types, so a server may hold a statement prepared long before a client asked
// for it. PostgreSQL prepares a client's statement when the client parses it: after a
// table or type it depends on changed, a statement prepared earlier can fail where the
// client's own would not (0A000 "cached plan must not change result type" when its
// result shape changed, XX000 "cache lookup failed for type N" when a type it takes was
// dropped and created again under the same name).
//
// So server statements are named by a statement epoch as well as the text and types
// (newStmtDef). The epoch (Server.stmtEpoch) moves on when a client sends DDL that can
// change what a prepared statement means (ALTER, DROP, CREATE OR REPLACE; once more when
// the transaction it ran in ends, when it is committed) and when a server reports one of
// those errors (DDL pgmux did not see). A client that parses or prepares after that gets
// a server statement prepared anew on every server, never one from before; one that
// re-prepares after such an error (drivers do: pgx, asyncpg) gets a fresh one too.
//
// A client that prepared before keeps its statement name, as PostgreSQL keeps its
// statement: where a server has it from before, it fails as PostgreSQL's would; where a
// server prepares it for the first time, it sees the new catalog. Such a copy may have a
// new result shape while the client binds with result formats for the old one: the
// server's 08P01 "bind message has N result formats but query has M columns" is then
// shown as the 0A000 PostgreSQL would have given (translatedPlanError). Old statements
// stay in the servers' caches until evicted (max_prepared_statements).
//
// Why not close and prepare again at each client Parse, or mark every cached statement
// stale when the epoch moves: either would give clients that prepared before the DDL,
// and bind with the result shape they were given then, rows of the new shape without an
// error, where PostgreSQL gives 0A000.

// mayInvalidate reports whether SQL text may change what statements prepared earlier
// mean: any statement starting with ALTER or DROP, or CREATE OR REPLACE, at top level or
// in a DO block (migrations wrap DDL in them), or a DO block running SQL pgmux cannot
// read (EXECUTE format(...)) in a text that mentions such a word.
func mayInvalidate(sql string) bool {
	return mayInvalidateLead(sql, sqlscan.LeadOf(sql))
}

// mayInvalidateLead is mayInvalidate for l = sqlscan.LeadOf(sql).
func mayInvalidateLead(sql string, l sqlscan.Lead) bool {
	if !l.More {
		// One statement (a DO block's body always holds a ';' of its own)
		return leadsDDL(l.Keyword, sql)
	}
	if !sqlscan.ContainsFold(sql, "alter") && !sqlscan.ContainsFold(sql, "drop") && !sqlscan.ContainsFold(sql, "replace") {
		return false
	}
	for st := range sqlscan.All(sqlscan.Scan(sql)) {
		if leadsDDL(sqlscan.LeadKeyword(st.Text), st.Text) || (st.Do != nil && st.Do.Dynamic) {
			return true
		}
	}
	return false
}

// leadsDDL reports whether text, whose first word is kw, is ALTER, DROP or CREATE OR
// REPLACE.
func leadsDDL(kw sqlscan.Keyword, text string) bool {
	switch kw {
	case sqlscan.KwAlter, sqlscan.KwDrop:
		return true
	case sqlscan.KwCreate:
		lx := sqlscan.NewLexer(text)
		lx.Next()
		return lx.Next().IsKeyword("or")
	}
	return false
}

// noteDDL moves the statement epoch on when sql may invalidate prepared statements, and
// again when the client's transaction ends (onReady), when the DDL is committed. l is
// sqlscan.LeadOf(sql).
func (s *Session) noteDDL(sql string, l sqlscan.Lead) {
	if mayInvalidateLead(sql, l) {
		s.srv.stmtEpoch.Add(1)
		s.mu.Lock()
		s.ddlSent = true
		s.mu.Unlock()
	}
}

// ddlSettled moves the epoch on once more when a transaction in which the client sent
// DDL has ended: statements prepared meanwhile on other servers saw the old catalog.
// s.mu is held.
func (s *Session) ddlSettled(status byte) {
	if status == 'I' && s.ddlSent {
		s.ddlSent = false
		s.srv.stmtEpoch.Add(1)
	}
}

// translatedPlanError returns PostgreSQL's 0A000 "cached plan must not change result
// type" for an 08P01 "bind message has N result formats but query has M columns" that a
// client's Bind of a statement it prepared before the statement epoch moved got: pgmux
// prepared the statement anew with the new shape where PostgreSQL would have kept the
// client's. It returns nil for any other error.
func (s *Session) translatedPlanError(m []byte, e expect) []byte {
	if e.Kind != 'B' || e.Hide || e.Def == nil || e.Def.epoch == s.srv.stmtEpoch.Load() ||
		!bytes.Contains(m, []byte("C08P01\x00")) || !bytes.Contains(m, []byte(" result formats but query has ")) {
		return nil
	}
	b, start := wire.Begin(nil, 'E')
	for _, f := range [...]string{"SERROR", "VERROR", "C0A000", "Mcached plan must not change result type", "RRevalidateCachedQuery"} {
		b = wire.AppendString(b, f)
	}
	b = append(b, 0)
	return wire.Finish(b, start)
}

// lookupFailed reports whether an ErrorResponse is PostgreSQL's XX000 "cache lookup
// failed for type N", which a statement whose parameter or result type was dropped
// gives. The message is internal and never translated.
func lookupFailed(m []byte) bool {
	return bytes.Contains(m, []byte("CXX000\x00")) && bytes.Contains(m, []byte("\x00Mcache lookup failed for type "))
}
