package sqlscan

// Scan splits sql into statements and classifies each one. Empty statements (";;", or text
// that is only comments) are dropped, so Scan("") is nil. It never panics, whatever the
// input; unterminated quotes and comments swallow the rest of the text.
//
// The text is lexed once. Statements that start with an interesting keyword are then
// re-read from their start only as far as classification needs (a few tokens, or up to
// AS for PREPARE).
func Scan(sql string) []Statement { return scan(sql, 0) }

// scan is Scan for text found at nesting level nest (0 at top level, deeper inside DO
// blocks and the EXECUTE literals in them).
func scan(sql string, nest int) []Statement {
	var out []Statement
	sp := splitter{nest: nest}
	lx := Lexer{src: sql}
	for {
		tok := lx.Next()
		if tok.Kind == TokEOF || (tok.Kind == TokSemicolon && sp.atomic == 0) {
			if sp.n > 0 {
				out = append(out, sp.finish(sql))
			}
			if tok.Kind == TokEOF {
				return out
			}
			sp = splitter{nest: nest}
			continue
		}
		sp.feed(tok)
	}
}

// splitter accumulates what the single pass learns about the current statement.
type splitter struct {
	first, last Token
	n           int // tokens so far
	lead        Keyword
	depth       int // parenthesis depth, never negative
	nest        int // nesting level of the text (see scan)

	fnHead int8 // progress through CREATE [OR REPLACE] FUNCTION|PROCEDURE; fnYes once matched
	atomic int  // open BEGIN ATOMIC/CASE blocks inside a function body
	begun  bool // the previous token was BEGIN in such a statement

	into     int8 // progress through SELECT ... INTO [TABLE|LOCAL|GLOBAL] TEMP|pg_temp.
	intoTemp bool

	calls callTracker
	adv   advisory
	cfg   setConfigTracker
}

const (
	fnNo  int8 = -1
	fnYes int8 = 9
)

func (s *splitter) feed(t Token) {
	if s.n == 0 {
		s.first = t
		if t.Kind == TokIdent {
			s.lead = KeywordOf(t.Text)
		}
	}
	s.n++
	s.last = t
	begun := s.begun
	s.begun = false
	switch t.Kind {
	case TokLParen:
		s.depth++
	case TokRParen:
		if s.depth > 0 {
			s.depth--
		}
	case TokIdent:
		s.trackFunction(t, begun)
	case TokString:
		if s.lead == KwDo {
			countBody(stringBody(t.Text), &s.adv)
		}
	}
	if s.depth == 0 && (s.lead == KwSelect || s.lead == KwWith) {
		s.trackInto(t)
	}
	s.calls.feed(t, &s.adv)
	s.cfg.feed(t)
}

// trackFunction follows psql's heuristic for BEGIN ATOMIC bodies, tightened: in a statement
// that starts CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN ATOMIC (and CASE inside a
// block) opens a block and END closes one, outside parentheses; ';' inside a block does not
// split. Requiring ATOMIC keeps a column named begin from swallowing what follows.
func (s *splitter) trackFunction(t Token, begun bool) {
	switch {
	case s.fnHead == fnNo:
		return
	case s.fnHead == fnYes:
		if s.depth > 0 {
			return
		}
		switch {
		case t.IsKeyword("begin"):
			s.begun = true
		case begun && t.IsKeyword("atomic"):
			s.atomic++
		case t.IsKeyword("case") && s.atomic > 0:
			s.atomic++
		case t.IsKeyword("end") && s.atomic > 0:
			s.atomic--
		}
		return
	}
	want := [...]string{"create", "or", "replace"}
	switch {
	case int(s.fnHead) < len(want) && t.IsKeyword(want[s.fnHead]):
		s.fnHead++
	case (s.fnHead == 1 || s.fnHead == 3) && (t.IsKeyword("function") || t.IsKeyword("procedure")):
		s.fnHead = fnYes
	default:
		s.fnHead = fnNo
	}
}

// trackInto spots SELECT ... INTO [TABLE] TEMP|TEMPORARY|LOCAL TEMP|GLOBAL TEMP|pg_temp.x at
// the top level of a SELECT or WITH statement (which creates a temporary table).
func (s *splitter) trackInto(t Token) {
	const (
		none = iota
		afterInto
		afterScope // LOCAL or GLOBAL
		afterTable
		afterPgTemp
	)
	next := int8(none)
	switch s.into {
	case none:
		if t.IsKeyword("into") {
			next = afterInto
		} else if t.IsKeyword("insert") || t.IsKeyword("update") || t.IsKeyword("delete") || t.IsKeyword("merge") {
			s.lead = KwNone // WITH ... INSERT INTO temp ...: a table named temp
		}
	case afterInto, afterScope, afterTable:
		switch {
		case s.into != afterTable && (t.IsKeyword("temp") || t.IsKeyword("temporary")):
			s.intoTemp = true
		case s.into == afterInto && (t.IsKeyword("local") || t.IsKeyword("global")):
			next = afterScope
		case s.into == afterInto && t.IsKeyword("table"):
			next = afterTable
		case s.into != afterScope && isPgTemp(t):
			next = afterPgTemp
		}
	case afterPgTemp:
		if t.Kind == TokDot {
			s.intoTemp = true
		}
	}
	s.into = next
}

func (s *splitter) finish(sql string) Statement {
	st := Statement{
		Text:              sql[s.first.Pos:s.last.End()],
		AdvisoryLock:      s.adv.lock,
		AdvisoryUnlock:    s.adv.unlock,
		AdvisoryUnlockAll: s.adv.unlockAll,
		SetConfigs:        s.cfg.calls,
	}
	if s.lead == KwDo {
		st.Do = parseDo(st.Text, s.nest)
	}
	if s.lead.classified() {
		classify(&st, s.lead)
	}
	if st.Kind == KindOther && s.intoTemp {
		st.Kind = KindCreateTemp
	}
	return st
}

// isPgTemp reports whether t is the schema name pg_temp, quoted or not.
func isPgTemp(t Token) bool {
	return t.IsKeyword("pg_temp") || (t.Kind == TokQuotedIdent && t.Text == `"pg_temp"`)
}

// advisory collects advisory lock calls.
type advisory struct {
	lock, unlock int
	unlockAll    bool
}

// callTracker spots advisory lock function calls: a name followed by '(' and preceded
// either by nothing qualifying it or by "pg_catalog.".
type callTracker struct {
	p1, p2, p3 Token // the last three tokens, most recent first
}

func (c *callTracker) feed(t Token, a *advisory) {
	if t.Kind == TokLParen && (c.p2.Kind != TokDot || c.p3.IsKeyword("pg_catalog") ||
		(c.p3.Kind == TokQuotedIdent && c.p3.Text == `"pg_catalog"`)) {
		switch advisoryFunc(c.p1) {
		case advLock:
			a.lock++
		case advUnlock:
			a.unlock++
		case advUnlockAll:
			a.unlockAll = true
		}
	}
	c.p3, c.p2, c.p1 = c.p2, c.p1, t
}

const (
	advNone = iota
	advLock
	advUnlock
	advUnlockAll
)

// advisoryFunc says which session-level advisory function t names, if any. Quoted names
// must match exactly (lowercase).
func advisoryFunc(t Token) int {
	name := t.Text
	switch t.Kind {
	case TokIdent:
	case TokQuotedIdent:
		if len(name) < 2 || name[0] != '"' || name[len(name)-1] != '"' {
			return advNone
		}
		name = name[1 : len(name)-1]
		for i := 0; i < len(name); i++ {
			if isUpper(name[i]) {
				return advNone // "PG_ADVISORY_LOCK" is some other function
			}
		}
	default:
		return advNone
	}
	if len(name) < len("pg_advisory_lock") || !hasPrefixFold(name, "pg_") {
		return advNone
	}
	switch {
	case equalFoldASCII(name, "pg_advisory_lock"), equalFoldASCII(name, "pg_try_advisory_lock"),
		equalFoldASCII(name, "pg_advisory_lock_shared"), equalFoldASCII(name, "pg_try_advisory_lock_shared"):
		return advLock
	case equalFoldASCII(name, "pg_advisory_unlock"), equalFoldASCII(name, "pg_advisory_unlock_shared"):
		return advUnlock
	case equalFoldASCII(name, "pg_advisory_unlock_all"):
		return advUnlockAll
	}
	return advNone
}

// countBody lexes the body of a DO block as SQL and counts the advisory calls in it; that is
// close enough to PL/pgSQL for spotting function calls.
func countBody(body string, a *advisory) {
	var c callTracker
	lx := Lexer{src: body}
	for t := lx.Next(); t.Kind != TokEOF; t = lx.Next() {
		c.feed(t, a)
	}
}

// stringBody strips the delimiters from a string literal token: $tag$...$tag$, '...',
// E'...', U&'...' (doubled quotes are left doubled).
func stringBody(s string) string {
	if len(s) > 0 && s[0] == '$' {
		end := 1
		for end < len(s) && s[end] != '$' {
			end++
		}
		tag := s[:min(end+1, len(s))]
		s = s[len(tag):]
		if len(s) >= len(tag) && s[len(s)-len(tag):] == tag {
			s = s[:len(s)-len(tag)]
		}
		return s
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			s = s[i+1:]
			break
		}
	}
	if len(s) > 0 && s[len(s)-1] == '\'' {
		s = s[:len(s)-1]
	}
	return s
}
