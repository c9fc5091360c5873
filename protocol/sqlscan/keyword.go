package sqlscan

import "strconv"

// Keyword identifies a statement-leading word that the classifier or the pooler looks
// at. The pooler classifies a text's first word once (LeadOf) and switches on the
// Keyword instead of comparing strings.
type Keyword uint8

// Leading keywords. KwBegin through KwDo lead statements that may be of a kind other than
// KindOther (or hold advisory calls in a DO body) whatever follows; KwBegin through
// KwClose are the ones classify reads further.
const (
	KwNone Keyword = iota
	KwBegin
	KwStart
	KwCommit
	KwEnd
	KwAbort
	KwRollback
	KwSet
	KwReset
	KwPrepare
	KwExecute
	KwDeallocate
	KwDiscard
	KwListen
	KwUnlisten
	KwNotify
	KwDeclare
	KwCreate
	KwLoad
	KwClose
	KwDo
	KwSelect  // interesting only with INTO TEMP
	KwWith    // interesting only with INTO TEMP
	KwExplain // EXPLAIN EXECUTE is rewritten like EXECUTE (the proxy's sqlprep.go)
	KwDrop    // may drop a temporary object, or change prepared statements' meaning
	KwAlter   // may change prepared statements' meaning
)

var keywordNames = [...]string{
	KwNone:       "",
	KwBegin:      "begin",
	KwStart:      "start",
	KwCommit:     "commit",
	KwEnd:        "end",
	KwAbort:      "abort",
	KwRollback:   "rollback",
	KwSet:        "set",
	KwReset:      "reset",
	KwPrepare:    "prepare",
	KwExecute:    "execute",
	KwDeallocate: "deallocate",
	KwDiscard:    "discard",
	KwListen:     "listen",
	KwUnlisten:   "unlisten",
	KwNotify:     "notify",
	KwDeclare:    "declare",
	KwCreate:     "create",
	KwLoad:       "load",
	KwClose:      "close",
	KwDo:         "do",
	KwSelect:     "select",
	KwWith:       "with",
	KwExplain:    "explain",
	KwDrop:       "drop",
	KwAlter:      "alter",
}

// String returns the keyword in lower case ("" for KwNone).
func (k Keyword) String() string {
	if int(k) < len(keywordNames) {
		return keywordNames[k]
	}
	return "Keyword(" + strconv.Itoa(int(k)) + ")"
}

// leads reports whether a statement starting with k may be of a kind other than
// KindOther (or hold advisory calls in a DO body) whatever follows.
func (k Keyword) leads() bool { return KwBegin <= k && k <= KwDo }

// classified reports whether classify reads a statement starting with k.
func (k Keyword) classified() bool { return KwBegin <= k && k <= KwClose }

// The keywords' first eight bytes, in lower case, packed little-endian (see KeywordOf).
const (
	pkBegin    = 'b' | 'e'<<8 | 'g'<<16 | 'i'<<24 | 'n'<<32
	pkStart    = 's' | 't'<<8 | 'a'<<16 | 'r'<<24 | 't'<<32
	pkCommit   = 'c' | 'o'<<8 | 'm'<<16 | 'm'<<24 | 'i'<<32 | 't'<<40
	pkEnd      = 'e' | 'n'<<8 | 'd'<<16
	pkAbort    = 'a' | 'b'<<8 | 'o'<<16 | 'r'<<24 | 't'<<32
	pkRollback = 'r' | 'o'<<8 | 'l'<<16 | 'l'<<24 | 'b'<<32 | 'a'<<40 | 'c'<<48 | 'k'<<56
	pkSet      = 's' | 'e'<<8 | 't'<<16
	pkReset    = 'r' | 'e'<<8 | 's'<<16 | 'e'<<24 | 't'<<32
	pkPrepare  = 'p' | 'r'<<8 | 'e'<<16 | 'p'<<24 | 'a'<<32 | 'r'<<40 | 'e'<<48
	pkExecute  = 'e' | 'x'<<8 | 'e'<<16 | 'c'<<24 | 'u'<<32 | 't'<<40 | 'e'<<48
	pkDealloca = 'd' | 'e'<<8 | 'a'<<16 | 'l'<<24 | 'l'<<32 | 'o'<<40 | 'c'<<48 | 'a'<<56
	pkDiscard  = 'd' | 'i'<<8 | 's'<<16 | 'c'<<24 | 'a'<<32 | 'r'<<40 | 'd'<<48
	pkListen   = 'l' | 'i'<<8 | 's'<<16 | 't'<<24 | 'e'<<32 | 'n'<<40
	pkUnlisten = 'u' | 'n'<<8 | 'l'<<16 | 'i'<<24 | 's'<<32 | 't'<<40 | 'e'<<48 | 'n'<<56
	pkNotify   = 'n' | 'o'<<8 | 't'<<16 | 'i'<<24 | 'f'<<32 | 'y'<<40
	pkDeclare  = 'd' | 'e'<<8 | 'c'<<16 | 'l'<<24 | 'a'<<32 | 'r'<<40 | 'e'<<48
	pkCreate   = 'c' | 'r'<<8 | 'e'<<16 | 'a'<<24 | 't'<<32 | 'e'<<40
	pkLoad     = 'l' | 'o'<<8 | 'a'<<16 | 'd'<<24
	pkClose    = 'c' | 'l'<<8 | 'o'<<16 | 's'<<24 | 'e'<<32
	pkDo       = 'd' | 'o'<<8
	pkSelect   = 's' | 'e'<<8 | 'l'<<16 | 'e'<<24 | 'c'<<32 | 't'<<40
	pkWith     = 'w' | 'i'<<8 | 't'<<16 | 'h'<<24
	pkExplain  = 'e' | 'x'<<8 | 'p'<<16 | 'l'<<24 | 'a'<<32 | 'i'<<40 | 'n'<<48
	pkDrop     = 'd' | 'r'<<8 | 'o'<<16 | 'p'<<24
	pkAlter    = 'a' | 'l'<<8 | 't'<<16 | 'e'<<24 | 'r'<<32
)

// KeywordOf maps a word to its Keyword, ASCII case-insensitively, or KwNone. Pass it an
// unquoted identifier's text (FirstKeyword's answer): a quoted "select" is no keyword. It
// never allocates.
func KeywordOf(w string) Keyword { return keywordIn(w, 0, len(w)) }

// keywordIn is KeywordOf(s[i:end]).
//
// The word's bytes, each OR 0x20, are packed into one integer and compared with the
// keywords' packed constants: OR 0x20 lowers ASCII letters and maps no other byte onto
// a lower-case letter, and no keyword byte is 0, so equal integers mean equal words.
// Where s has eight bytes from i, they are read at once.
func keywordIn(s string, i, end int) Keyword {
	const lower = 0x2020202020202020
	n := end - i
	if n < 2 || n > len("deallocate") {
		return KwNone
	}
	var x uint64
	if i+8 <= len(s) {
		x = load64(s[i:i+8]) | lower
		if n < 8 {
			x &= 1<<(8*n) - 1
		}
	} else {
		for k := range min(n, 8) {
			x |= uint64(s[i+k]|0x20) << (8 * k)
		}
	}
	if n > 8 {
		if n == 10 && x == pkDealloca && s[i+8]|0x20 == 't' && s[i+9]|0x20 == 'e' {
			return KwDeallocate
		}
		return KwNone
	}
	switch x {
	case pkBegin:
		return KwBegin
	case pkStart:
		return KwStart
	case pkCommit:
		return KwCommit
	case pkEnd:
		return KwEnd
	case pkAbort:
		return KwAbort
	case pkRollback:
		return KwRollback
	case pkSet:
		return KwSet
	case pkReset:
		return KwReset
	case pkPrepare:
		return KwPrepare
	case pkExecute:
		return KwExecute
	case pkDiscard:
		return KwDiscard
	case pkListen:
		return KwListen
	case pkUnlisten:
		return KwUnlisten
	case pkNotify:
		return KwNotify
	case pkDeclare:
		return KwDeclare
	case pkCreate:
		return KwCreate
	case pkLoad:
		return KwLoad
	case pkClose:
		return KwClose
	case pkDo:
		return KwDo
	case pkSelect:
		return KwSelect
	case pkWith:
		return KwWith
	case pkExplain:
		return KwExplain
	case pkDrop:
		return KwDrop
	case pkAlter:
		return KwAlter
	}
	return KwNone
}

// LeadKeyword is KeywordOf(FirstKeyword(sql)).
func LeadKeyword(sql string) Keyword { return KeywordOf(FirstKeyword(sql)) }
