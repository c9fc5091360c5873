package sqlscan

import "strings"

// FirstKeyword returns the first token of sql if it is an unquoted word, skipping
// whitespace and comments, and "" otherwise. The result is a slice of sql in its original
// case; KeywordOf classifies it. It never allocates.
func FirstKeyword(sql string) string {
	i, end := firstWord(sql)
	return sql[i:end]
}

// firstWord returns where FirstKeyword's answer lies in sql (i == end for none).
func firstWord(sql string) (i, end int) {
	lx := Lexer{src: sql}
	lx.skipSpaceAndComments()
	// Lexer.Next's first token, when it is a word: only scanWord makes TokIdent, and
	// Next hands it every byte isIdentStart accepts.
	if i := lx.pos; i < len(sql) && isIdentStart(sql[i]) {
		if kind, end := scanWord(sql, i); kind == TokIdent {
			return i, end
		}
	}
	return 0, 0
}

// Lead is what the per-message fast path learns of a text in one look: its first word's
// Keyword, whether it may hold more than one statement, and whether Scan may find
// anything in it. The pooler takes it once per client message and decides pinning,
// LISTEN multiplexing, SQL PREPARE/EXECUTE, the statement cache and DDL from it, running
// Scan only where Interesting (or a Keyword) asks for it.
type Lead struct {
	Keyword     Keyword // KeywordOf(FirstKeyword(sql))
	More        bool    // MayHoldMore(sql)
	Interesting bool    // MaybeInteresting(sql)
}

// LeadOf returns sql's Lead. It never allocates.
func LeadOf(sql string) Lead {
	i, end := firstWord(sql)
	l := Lead{Keyword: keywordIn(sql, i, end), More: MayHoldMore(sql)}
	l.Interesting = l.Keyword.leads() || ((l.More || hasTriggerWord(sql)) && lexInteresting(sql))
	return l
}

// MaybeInteresting is the per-message fast path. It returns false only when Scan would
// certainly report nothing but KindOther statements without advisory lock or set_config
// calls, so the caller can skip Scan. It may return true for text that turns out to be
// ordinary (any CREATE, a ';' inside a string literal, a column named "advisory"...). It
// never allocates.
//
// The common case costs one token and two passes over the bytes (strings.IndexByte for
// ';', a word-at-a-time search for the others): the first word decides unless the text
// has a ';' with a statement after it, or "advisory", "temp" or "set_config" (any case),
// and only then is it lexed in full.
func MaybeInteresting(sql string) bool { return LeadOf(sql).Interesting }

// hasTrigger reports whether sql contains ';' (but for trailing ones) or, in any case,
// "advisory", "temp" or "set_config": the byte patterns without which only the first
// statement's first word matters.
func hasTrigger(sql string) bool { return MayHoldMore(sql) || hasTriggerWord(sql) }

// hasTriggerWord reports whether sql contains "advisory", "temp" or "set_config" in any
// case. It is a Horspool search for the words' first four bytes ("advi", "temp",
// "set_"): it looks at the last byte of a four-byte window and moves the window on by as
// many bytes as that byte allows, four for most, comparing words only where the byte is
// an i, p or _ (any case).
func hasTriggerWord(sql string) bool {
	for j := len("temp") - 1; j < len(sql); {
		shift := triggerShift[sql[j]]
		if shift == 0 {
			if triggerWordAt(sql, j-3) {
				return true
			}
			shift = 4 // i, p and _ are not among the first three bytes of any word
		}
		j += int(shift)
	}
	return false
}

// triggerShift is how far hasTriggerWord moves a window whose last byte is c: for an
// a, t, s, d, e, v or m (any case) the distance from its last place among the first
// three bytes of "advi", "temp" and "set_" to the fourth (a window ending there may be
// followed by one holding a word), for i, p and _ (any case) 0 (compare words first),
// and 4 for any other byte.
var triggerShift = func() (t [256]uint8) {
	for c := range t {
		t[c] = 4
	}
	for _, w := range [...]string{"advi", "temp", "set_"} {
		for k := range len(w) {
			for _, c := range [...]byte{w[k], w[k] &^ 0x20} { // both cases (_ stays _)
				t[c] = min(t[c], uint8(len(w)-1-k))
			}
		}
	}
	return t
}()

// load64 returns the eight bytes of b as a little-endian integer (one load where the
// machine allows).
func load64(b string) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// triggerWordAt reports whether "advisory", "temp" or "set_config" starts at sql[i].
func triggerWordAt(sql string, i int) bool {
	switch sql[i] | 0x20 {
	case 'a':
		return hasPrefixFold(sql[i:], "advisory")
	case 't':
		return hasPrefixFold(sql[i:], "temp")
	case 's':
		return hasPrefixFold(sql[i:], "set_config")
	}
	return false
}

// MayHoldMore reports whether sql may hold more than one statement: whether it has a ';'
// (inside a literal or not) with something other than whitespace and ';' after it. Text
// for which it is false is one statement, or none. It never allocates.
func MayHoldMore(sql string) bool {
	i := strings.IndexByte(sql, ';')
	return i >= 0 && !onlySpaceAfter(sql, i+1)
}

// onlySpaceAfter reports whether sql holds nothing but whitespace and ';' from i on: a
// ';' there starts no statement (most drivers and pgbench end their one statement so).
func onlySpaceAfter(sql string, i int) bool {
	for ; i < len(sql); i++ {
		if c := sql[i]; c != ';' && !isSpace(c) {
			return false
		}
	}
	return true
}

// lexInteresting lexes all of sql and reports whether any ';'-separated piece starts with
// an interesting word, any advisory function or set_config is named, or INTO is followed
// by a word that may begin a temporary table name. It over-approximates Scan: every
// statement Scan sees starts after some ';', and its checks are stricter versions of these.
func lexInteresting(sql string) bool {
	lx := Lexer{src: sql}
	atStart := true
	var prev Token
	for t := lx.Next(); t.Kind != TokEOF; t = lx.Next() {
		if t.Kind == TokSemicolon {
			atStart = true
			continue
		}
		if atStart && t.Kind == TokIdent && KeywordOf(t.Text).leads() {
			return true
		}
		atStart = false
		if advisoryFunc(t) != advNone || isSetConfig(t) {
			return true
		}
		if prev.IsKeyword("into") && (t.IsKeyword("temp") || t.IsKeyword("temporary") ||
			t.IsKeyword("local") || t.IsKeyword("global") || t.IsKeyword("table") || isPgTemp(t)) {
			return true
		}
		prev = t
	}
	return false
}
