package sqlscan

import "strings"

// Lexer walks SQL text one Token at a time, skipping whitespace and comments. It never
// allocates and never fails: bytes it does not understand come back as one-byte TokOp
// tokens, and unterminated quotes or comments run to the end of the input.
//
// The zero Lexer has no input; use NewLexer or Reset. A Lexer is not safe for concurrent
// use, but it is a small value, so each goroutine can have its own.
type Lexer struct {
	src string
	pos int
}

// NewLexer returns a Lexer positioned at the start of src.
func NewLexer(src string) *Lexer { return &Lexer{src: src} }

// Reset points l at the start of src, so one Lexer can be reused without allocating.
func (l *Lexer) Reset(src string) { l.src, l.pos = src, 0 }

// Next returns the next token, or a TokEOF token (Pos = len(input)) once the input is used
// up; after that it keeps returning TokEOF.
func (l *Lexer) Next() Token {
	l.skipSpaceAndComments()
	src, start := l.src, l.pos
	if start >= len(src) {
		return Token{Kind: TokEOF, Pos: len(src)}
	}
	kind, end := TokOp, start+1
	switch c := src[start]; {
	case c == '\'':
		kind, end = TokString, scanQuoted(src, start+1, '\'', false)
	case c == '"':
		kind, end = TokQuotedIdent, scanQuoted(src, start+1, '"', false)
	case isIdentStart(c):
		kind, end = scanWord(src, start)
	case isDigit(c) || (c == '.' && start+1 < len(src) && isDigit(src[start+1])):
		kind, end = TokNumber, scanNumber(src, start)
	case c == '$':
		kind, end = scanDollar(src, start)
	case c == ';':
		kind = TokSemicolon
	case c == '(':
		kind = TokLParen
	case c == ')':
		kind = TokRParen
	case c == ',':
		kind = TokComma
	case c == '.':
		kind = TokDot
	case c == ':':
		if start+1 < len(src) && (src[start+1] == ':' || src[start+1] == '=') {
			end = start + 2
		}
	case isOpChar(c):
		end = scanOp(src, start)
	}
	l.pos = end
	return Token{Kind: kind, Text: src[start:end], Pos: start}
}

// skipSpaceAndComments advances past whitespace, -- comments and nested /* */ comments.
func (l *Lexer) skipSpaceAndComments() {
	src, i := l.src, l.pos
	for i < len(src) {
		c := src[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			i = skipLineComment(src, i+2)
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i = skipBlockComment(src, i+2)
		default:
			l.pos = i
			return
		}
	}
	l.pos = i
}

// skipLineComment returns the offset just past the newline ending a -- comment.
func skipLineComment(src string, i int) int {
	for ; i < len(src); i++ {
		if src[i] == '\n' || src[i] == '\r' {
			return i + 1
		}
	}
	return len(src)
}

// skipBlockComment returns the offset just past the */ closing a comment whose /* ends
// before i; comments nest.
func skipBlockComment(src string, i int) int {
	for depth := 1; i+1 < len(src); {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i += 2
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(src)
}

// scanQuoted returns the offset just past the quote q closing a literal whose body starts
// at i. A doubled quote stands for itself; with backslash set, \ escapes the next byte.
func scanQuoted(src string, i int, q byte, backslash bool) int {
	for i < len(src) {
		if !backslash {
			j := strings.IndexByte(src[i:], q)
			if j < 0 {
				return len(src)
			}
			i += j
		}
		switch c := src[i]; {
		case c == '\\' && backslash:
			i += 2
		case c != q:
			i++
		case i+1 < len(src) && src[i+1] == q:
			i += 2
		default:
			return i + 1
		}
	}
	return len(src)
}

// scanWord lexes an identifier or keyword, or a literal with a letter prefix: E'...',
// U&'...', U&"...", B'...', X'...', N'...'.
func scanWord(src string, start int) (TokenKind, int) {
	if start+1 < len(src) {
		switch c, next := src[start]|0x20, src[start+1]; {
		case c == 'e' && next == '\'':
			return TokString, scanQuoted(src, start+2, '\'', true)
		case (c == 'b' || c == 'x' || c == 'n') && next == '\'':
			return TokString, scanQuoted(src, start+2, '\'', false)
		case c == 'u' && next == '&' && start+2 < len(src):
			switch src[start+2] {
			case '\'':
				return TokString, scanQuoted(src, start+3, '\'', false)
			case '"':
				return TokQuotedIdent, scanQuoted(src, start+3, '"', false)
			}
		}
	}
	i := start + 1
	for i < len(src) && isIdentCont(src[i]) {
		i++
	}
	return TokIdent, i
}

// scanNumber lexes a numeric literal loosely: digits, letters (exponents, 0x prefixes,
// and the junk the server would reject), underscores, dots and an exponent sign.
func scanNumber(src string, i int) int {
	for i < len(src) {
		c := src[i]
		switch {
		case (c == 'e' || c == 'E') && i+2 < len(src) && (src[i+1] == '+' || src[i+1] == '-') && isDigit(src[i+2]):
			i += 3
		case isDigit(c) || isLetter(c) || c == '_':
			i++
		case c == '.' && !(i+1 < len(src) && src[i+1] == '.'):
			i++
		default:
			return i
		}
	}
	return i
}

// scanDollar lexes what starts with '$': a $n parameter, a dollar-quoted string, or a lone
// '$' operator byte.
func scanDollar(src string, start int) (TokenKind, int) {
	i := start + 1
	if i < len(src) && isDigit(src[i]) {
		for i < len(src) && isDigit(src[i]) {
			i++
		}
		return TokParam, i
	}
	if i < len(src) && isIdentStart(src[i]) {
		for i++; i < len(src) && isIdentCont(src[i]) && src[i] != '$'; i++ {
		}
	}
	if i >= len(src) || src[i] != '$' {
		return TokOp, start + 1
	}
	tag := src[start : i+1]
	body := i + 1
	if j := strings.Index(src[body:], tag); j >= 0 {
		return TokString, body + j + len(tag)
	}
	return TokString, len(src)
}

// scanOp lexes an operator made of op characters. Like the server, it stops before a
// comment start and drops trailing + and - unless the operator contains one of ~!@#^&|`?%
// (so "x=-1" is "x", "=", "-1").
func scanOp(src string, start int) int {
	i := start + 1
	for i < len(src) && isOpChar(src[i]) {
		if i+1 < len(src) && ((src[i] == '-' && src[i+1] == '-') || (src[i] == '/' && src[i+1] == '*')) {
			break
		}
		i++
	}
	if i-start > 1 && (src[i-1] == '+' || src[i-1] == '-') &&
		!strings.ContainsAny(src[start:i-1], "~!@#^&|`?%") {
		for i-start > 1 && (src[i-1] == '+' || src[i-1] == '-') {
			i--
		}
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// isIdentStart matches the server's ident_start: letters, '_' and any byte >= 0x80.
func isIdentStart(c byte) bool { return isLetter(c) || c == '_' || c >= 0x80 }

// isIdentCont matches ident_cont: ident_start plus digits and '$'.
func isIdentCont(c byte) bool { return identCont[c] }

// identCont is isIdentCont as a table: scanWord asks it of every byte of every word.
var identCont = func() (t [256]bool) {
	for c := range t {
		t[c] = isIdentStart(byte(c)) || isDigit(byte(c)) || c == '$'
	}
	return t
}()

func isOpChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}
