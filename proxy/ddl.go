package proxy

import (
	"bytes"
	"strings"

	"github.com/pgmux/pgmux/protocol/sqlscan"
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
// So server statements are named by the epoch as well as the text (newStmtDef): the
// epoch (Server.stmtEpoch) moves on when a client sends DDL that can change what a
// prepared statement means (ALTER, DROP, CREATE OR REPLACE) and when a server reports
// one of those errors (DDL pgmux did not see, made through another connection). A client
// that parses or prepares after that gets a statement prepared anew on every server,
// never one from before; a client that prepared before keeps its statement, which fails
// as PostgreSQL's own would (or, where a server prepares it for the first time, works),
// and gets a new one when it prepares again after the error, as drivers do. Statements
// of older epochs stay in the servers' caches until evicted (max_prepared_statements).
//
// Why not close and prepare again on every client Parse instead: the current server's
// copy would be fresh, but the copies on the other servers would not, and clients that
// prepared before the DDL and share the statement would silently get the new result
// shape under the old description.

// mayInvalidate reports whether SQL text may change what statements prepared earlier
// mean: any statement starting with ALTER or DROP, or CREATE OR REPLACE.
func mayInvalidate(sql string) bool {
	if strings.IndexByte(sql, ';') < 0 {
		return leadsDDL(sqlscan.FirstKeyword(sql), sql)
	}
	if !containsFold(sql, "alter") && !containsFold(sql, "drop") && !containsFold(sql, "replace") {
		return false
	}
	for _, st := range sqlscan.Scan(sql) {
		if leadsDDL(sqlscan.FirstKeyword(st.Text), st.Text) {
			return true
		}
	}
	return false
}

func leadsDDL(kw, text string) bool {
	switch {
	case strings.EqualFold(kw, "alter"), strings.EqualFold(kw, "drop"):
		return true
	case strings.EqualFold(kw, "create"):
		lx := sqlscan.NewLexer(text)
		lx.Next()
		return lx.Next().IsKeyword("or")
	}
	return false
}

// noteDDL moves the statement epoch on when sql may invalidate prepared statements.
func (s *Session) noteDDL(sql string) {
	if mayInvalidate(sql) {
		s.srv.stmtEpoch.Add(1)
	}
}

// lookupFailed reports whether an ErrorResponse is PostgreSQL's XX000 "cache lookup
// failed for type N", which a statement whose parameter or result type was dropped
// gives. The message is internal and never translated.
func lookupFailed(m []byte) bool {
	return bytes.Contains(m, []byte("CXX000\x00")) && bytes.Contains(m, []byte("\x00Mcache lookup failed for type "))
}

// containsFold reports whether s contains the lowercase ASCII word w in any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for j < len(w) && s[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}
