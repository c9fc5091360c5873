package sqlscan

import (
	"strconv"
	"strings"
)

// TokenKind is the lexical class of a Token.
type TokenKind uint8

// Token kinds. Keywords are not a kind of their own: PostgreSQL keywords depend on context,
// so they come back as TokIdent and callers test them with Token.IsKeyword.
const (
	TokEOF         TokenKind = iota // end of input; Text is empty
	TokIdent                        // unquoted identifier or keyword
	TokQuotedIdent                  // "quoted identifier" or U&"identifier"
	TokString                       // '...', E'...', U&'...', B'...', X'...', N'...', $tag$...$tag$
	TokNumber                       // 42, 3.5, .5, 1e10, 0x1F, 1_000
	TokOp                           // operators and any other single byte: = <> :: || [ ] \ ...
	TokSemicolon                    // ;
	TokLParen                       // (
	TokRParen                       // )
	TokComma                        // ,
	TokDot                          // .
	TokParam                        // $1
)

var tokenKindNames = [...]string{
	TokEOF:         "EOF",
	TokIdent:       "Ident",
	TokQuotedIdent: "QuotedIdent",
	TokString:      "String",
	TokNumber:      "Number",
	TokOp:          "Op",
	TokSemicolon:   "Semicolon",
	TokLParen:      "LParen",
	TokRParen:      "RParen",
	TokComma:       "Comma",
	TokDot:         "Dot",
	TokParam:       "Param",
}

// String returns the kind's name, e.g. "QuotedIdent".
func (k TokenKind) String() string {
	if int(k) < len(tokenKindNames) {
		return tokenKindNames[k]
	}
	return "TokenKind(" + strconv.Itoa(int(k)) + ")"
}

// Token is one lexeme. Text is a slice of the lexer's input (never a copy), quotes and
// prefixes included; Pos is the byte offset of Text in that input.
type Token struct {
	Kind TokenKind
	Text string
	Pos  int
}

// End is the byte offset just past the token.
func (t Token) End() int { return t.Pos + len(t.Text) }

// IsKeyword reports whether t is the unquoted identifier kw, compared ASCII
// case-insensitively (as the server does). kw should be plain ASCII. It never allocates.
func (t Token) IsKeyword(kw string) bool {
	return t.Kind == TokIdent && equalFoldASCII(t.Text, kw)
}

// Reserved reports whether t is an unquoted reserved or type/function-name keyword:
// not usable as a name (ColId) unless quoted.
func (t Token) Reserved() bool {
	return t.Kind == TokIdent && reservedKeyword(lowerASCII(t.Text))
}

// maxIdentLen is NAMEDATALEN-1: the server truncates longer identifiers.
const maxIdentLen = 63

// Ident returns the name an identifier token denotes, as the server would see it:
// unquoted identifiers are ASCII-lowercased; quoted ones lose their quotes and "" becomes ";
// U&"..." escapes (\XXXX, \+XXXXXX, \\) are decoded with the default escape character
// (a UESCAPE clause is not honoured). The result is truncated to 63 bytes at a character
// boundary. It allocates only when the result differs from a slice of the input. For tokens
// that are not identifiers it returns "".
func (t Token) Ident() string {
	var s string
	switch t.Kind {
	case TokIdent:
		s = lowerASCII(t.Text)
	case TokQuotedIdent:
		if len(t.Text) > 0 && t.Text[0] != '"' {
			s = decodeUnicodeEscapes(unquote(t.Text[2:], '"'))
		} else {
			s = unquote(t.Text, '"')
		}
	default:
		return ""
	}
	return truncateIdent(s)
}

// unquote strips the quote q around s (the closing one may be missing) and undoubles qq.
func unquote(s string, q byte) string {
	if len(s) == 0 || s[0] != q {
		return s
	}
	s = s[1:]
	if n := len(s); n > 0 && s[n-1] == q && strings.Count(s, string(q))%2 == 1 {
		s = s[:n-1]
	}
	if strings.IndexByte(s, q) < 0 {
		return s
	}
	return strings.ReplaceAll(s, string([]byte{q, q}), string(q))
}

// decodeUnicodeEscapes decodes \XXXX and \+XXXXXX escapes and \\; anything malformed is
// kept as written (the server would reject it).
func decodeUnicodeEscapes(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			b.WriteByte('\\')
			i++
			continue
		}
		digits, skip := 4, 1
		if i+1 < len(s) && s[i+1] == '+' {
			digits, skip = 6, 2
		}
		if r, ok := parseHex(s, i+skip, digits); ok {
			b.WriteRune(r)
			i += skip + digits - 1
			continue
		}
		b.WriteByte('\\')
	}
	return b.String()
}

func parseHex(s string, at, n int) (rune, bool) {
	if at+n > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[at : at+n]) {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			r = r<<4 | rune(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// truncateIdent clips s to maxIdentLen bytes without splitting a UTF-8 sequence.
func truncateIdent(s string) string {
	if len(s) <= maxIdentLen {
		return s
	}
	n := maxIdentLen
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// lowerASCII lowercases A-Z, returning s itself when there is nothing to change.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && !isUpper(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if isUpper(b[i]) {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// equalFoldASCII compares ASCII case-insensitively; unlike strings.EqualFold it does not
// apply Unicode folding (the server does not: the Kelvin sign is not a "k").
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && toLower(a[i]) != toLower(b[i]) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s begins with the lowercase ASCII word w, ignoring case.
func hasPrefixFold(s, w string) bool {
	return len(s) >= len(w) && equalFoldASCII(s[:len(w)], w)
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func toLower(c byte) byte {
	if isUpper(c) {
		return c + 'a' - 'A'
	}
	return c
}

// ContainsFold reports whether s contains w, a lowercase ASCII word, in any case: a
// cheap look for a keyword before a full scan (it does not tell a word from a part of one).
func ContainsFold(s, w string) bool {
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
