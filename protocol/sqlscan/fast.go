package sqlscan

import "strings"

// keyword identifies the statement-leading keywords the classifier cares about.
type keyword uint8

const (
	kwNone keyword = iota
	kwBegin
	kwStart
	kwCommit
	kwEnd
	kwAbort
	kwRollback
	kwSet
	kwReset
	kwPrepare
	kwExecute
	kwDeallocate
	kwDiscard
	kwListen
	kwUnlisten
	kwNotify
	kwDeclare
	kwCreate
	kwLoad
	kwClose
	kwDo
	kwSelect // interesting only with INTO TEMP
	kwWith   // interesting only with INTO TEMP
)

// keywordOf maps an unquoted leading word to its keyword, case-insensitively, without
// allocating.
func keywordOf(s string) keyword {
	var buf [len("deallocate")]byte
	if len(s) < 2 || len(s) > len(buf) {
		return kwNone
	}
	for i := 0; i < len(s); i++ {
		buf[i] = toLower(s[i])
	}
	switch string(buf[:len(s)]) {
	case "begin":
		return kwBegin
	case "start":
		return kwStart
	case "commit":
		return kwCommit
	case "end":
		return kwEnd
	case "abort":
		return kwAbort
	case "rollback":
		return kwRollback
	case "set":
		return kwSet
	case "reset":
		return kwReset
	case "prepare":
		return kwPrepare
	case "execute":
		return kwExecute
	case "deallocate":
		return kwDeallocate
	case "discard":
		return kwDiscard
	case "listen":
		return kwListen
	case "unlisten":
		return kwUnlisten
	case "notify":
		return kwNotify
	case "declare":
		return kwDeclare
	case "create":
		return kwCreate
	case "load":
		return kwLoad
	case "close":
		return kwClose
	case "do":
		return kwDo
	case "select":
		return kwSelect
	case "with":
		return kwWith
	}
	return kwNone
}

// leadsInteresting reports whether a statement starting with word may be of a kind other
// than KindOther (or hold advisory calls in a DO body) whatever follows.
func leadsInteresting(word string) bool {
	k := keywordOf(word)
	return k != kwNone && k != kwSelect && k != kwWith
}

// FirstKeyword returns the first token of sql if it is an unquoted word, skipping
// whitespace and comments, and "" otherwise. The result is a slice of sql in its original
// case; compare it with strings.EqualFold. It never allocates.
func FirstKeyword(sql string) string {
	lx := Lexer{src: sql}
	if t := lx.Next(); t.Kind == TokIdent {
		return t.Text
	}
	return ""
}

// MaybeInteresting is the per-message fast path. It returns false only when Scan would
// certainly report nothing but KindOther statements without advisory lock or set_config
// calls, so the
// caller can skip Scan. It may return true for text that turns out to be ordinary (any
// CREATE, a ';' inside a string literal, a column named "advisory"...). It never
// allocates.
//
// The common case costs one token plus one byte loop: the first word decides unless the
// text contains ';', "advisory" or "temp" (any case), and only then is it lexed in full.
func MaybeInteresting(sql string) bool {
	return MaybeInterestingFirst(sql, FirstKeyword(sql))
}

// MaybeInterestingFirst is MaybeInteresting for a caller that has sql's FirstKeyword
// already: first must be FirstKeyword(sql).
func MaybeInterestingFirst(sql, first string) bool {
	if leadsInteresting(first) {
		return true
	}
	if !hasTrigger(sql) {
		return false
	}
	return lexInteresting(sql)
}

// hasTrigger reports whether sql contains ';' (but for trailing ones) or, in any case, "advisory", "temp" or
// "set_config": the byte patterns without which only the first statement's first word
// matters.
func hasTrigger(sql string) bool {
	for i := 0; i < len(sql); i++ {
		// One table load per byte; the byte after an a, t or s (any case) is checked before
		// a whole word is compared: most of them begin none of the words.
		want := triggerNext[sql[i]]
		switch {
		case want == 0:
			continue
		case want == ';':
			if !onlySpaceAfter(sql, i+1) {
				return true
			}
		case nextFold(sql, i) != want:
			continue
		case want == 'd':
			if hasPrefixFold(sql[i:], "advisory") {
				return true
			}
		case sql[i]|0x20 == 't':
			if hasPrefixFold(sql[i:], "temp") {
				return true
			}
		default:
			if hasPrefixFold(sql[i:], "set_config") {
				return true
			}
		}
	}
	return false
}

// triggerNext maps the first byte of a hasTrigger pattern to the byte (in lower case) that
// must follow it; ';' maps to itself, a pattern of its own.
var triggerNext = [256]byte{';': ';', 'a': 'd', 'A': 'd', 't': 'e', 'T': 'e', 's': 'e', 'S': 'e'}

// nextFold returns sql[i+1] with ASCII letters in lower case (0 at the end): a cheap
// pre-filter before hasPrefixFold.
func nextFold(sql string, i int) byte {
	if i+1 >= len(sql) {
		return 0
	}
	return sql[i+1] | 0x20
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
		if atStart && t.Kind == TokIdent && leadsInteresting(t.Text) {
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
