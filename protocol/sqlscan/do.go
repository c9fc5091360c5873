package sqlscan

import (
	"iter"
	"strings"
	"unicode/utf8"
)

// Block is what pgmux can tell about the code a DO statement runs (Statement.Do).
//
// A PL/pgSQL body is split into statements on ';' outside quotes, comments and dollar
// quotes; block structure is stripped (labels, DECLARE sections, BEGIN, END, IF/ELSIF/
// ELSE ... THEN, CASE/WHEN ... THEN, LOOP, WHILE/FOR/FOREACH ... LOOP, EXCEPTION WHEN ...
// THEN), PERFORM becomes a query, and each statement left is classified like a top-level
// one. EXECUTE of a string literal (or of literals joined with ||) is scanned as SQL, so
// `EXECUTE 'LISTEN x'` is seen; EXECUTE of any other expression is text built at run
// time, which pgmux cannot see (Dynamic). Nested DO blocks, directly or in EXECUTE
// literals, are analysed the same way, up to maxNest levels.
//
// What stays invisible: statements inside functions and procedures the block calls, SQL
// built at run time, and bodies in languages other than plpgsql.
type Block struct {
	// Language is the block's language as the server will look it up: "plpgsql" unless
	// a LANGUAGE clause names another.
	Language string
	// Body is the block's source with its quotes removed and escapes decoded.
	Body string
	// Statements are the SQL statements the body contains, in order, including those
	// of EXECUTE literals. A statement's Text is a slice of Body (or of the decoded
	// literal), not of the Scan input. Nested DO statements carry their own Do.
	Statements []Statement
	// Straight is set when every statement runs once, in order, if the block succeeds:
	// no IF, CASE, loop, EXCEPTION handler, RETURN, RAISE or ASSERT, here or in a
	// nested block.
	Straight bool
	// Dynamic is set when the block, or a block nested in it, runs SQL pgmux cannot
	// read: EXECUTE of an expression that is not a literal, a language other than
	// plpgsql, or nesting deeper than pgmux follows.
	Dynamic bool
	// ListenOnly is set when the body is exactly BEGIN, one or more `LISTEN channel`,
	// `UNLISTEN channel` or `UNLISTEN *` statements, and END (nested BEGIN ... END
	// allowed; no labels, declarations or anything else), with channel names short
	// enough not to be truncated: running it is the same as running those statements.
	ListenOnly bool
}

// maxNest bounds how deep DO blocks and EXECUTE literals are followed.
const maxNest = 8

// All yields every statement in stmts and, depth first after each DO statement, the
// statements of its block and of blocks nested in it.
func All(stmts []Statement) iter.Seq[*Statement] {
	return func(yield func(*Statement) bool) { walkAll(stmts, yield) }
}

func walkAll(stmts []Statement, yield func(*Statement) bool) bool {
	for i := range stmts {
		if !yield(&stmts[i]) {
			return false
		}
		if b := stmts[i].Do; b != nil && !walkAll(b.Statements, yield) {
			return false
		}
	}
	return true
}

// parseDo analyses the text of a DO statement found at nesting level nest:
// DO [LANGUAGE lang] body [LANGUAGE lang]. It returns nil for text the server would
// reject (no body, two bodies, an unterminated or non-string body).
func parseDo(text string, nest int) *Block {
	lx := Lexer{src: text}
	lx.Next() // DO
	var body string
	haveBody, haveLang := false, false
	lang := "plpgsql"
	for t := lx.Next(); t.Kind != TokEOF; {
		switch {
		case t.Kind == TokString && !haveBody:
			v, next, ok := literal(&lx, t)
			if !ok {
				return nil
			}
			body, haveBody, t = v, true, next
		case t.IsKeyword("language") && !haveLang:
			switch l := lx.Next(); l.Kind {
			case TokIdent, TokQuotedIdent:
				lang, t = l.Ident(), lx.Next()
			case TokString:
				v, next, ok := literal(&lx, l)
				if !ok {
					return nil
				}
				lang, t = v, next // a string names the language exactly, case and all
			default:
				return nil
			}
			haveLang = true
		default:
			return nil
		}
	}
	if !haveBody {
		return nil
	}
	b := &Block{Language: lang, Body: body}
	switch {
	case lang != "plpgsql", nest >= maxNest:
		b.Dynamic = true
	default:
		w := plWalker{src: body, nest: nest + 1, b: b, plain: true}
		w.run()
	}
	return b
}

// literal reads the string literal t and the '...' literals continuing it (the server
// joins literals separated only by whitespace that contains a newline), and returns its
// value and the token after it; false if a part is not a usable string literal.
func literal(lx *Lexer, t Token) (string, Token, bool) {
	v, ok := stringValue(t.Text)
	next := lx.Next()
	if !ok || t.Text[0] == '$' {
		return v, next, ok
	}
	prefix := t.Text[:strings.IndexByte(t.Text, '\'')] // "", "E" or "U&": the parts share it
	var b strings.Builder
	for next.Kind == TokString && next.Text[0] == '\'' && continues(lx.src[t.End():next.Pos]) {
		part, ok := stringValue(prefix + next.Text)
		if !ok {
			return "", next, false
		}
		if b.Len() == 0 {
			b.WriteString(v)
		}
		b.WriteString(part)
		t, next = next, lx.Next()
	}
	if b.Len() > 0 {
		v = b.String()
	}
	return v, next, true
}

// continues reports whether the text between two quoted literals joins them: spaces and
// -- comments with at least one newline (scan.l's whitespace_with_newline).
func continues(gap string) bool {
	newline := false
	for i := 0; i < len(gap); i++ {
		switch c := gap[i]; {
		case c == '\n' || c == '\r':
			newline = true
		case c == ' ' || c == '\t' || c == '\f' || c == '\v':
		case c == '-' && i+1 < len(gap) && gap[i+1] == '-':
			j := strings.IndexAny(gap[i:], "\n\r")
			if j < 0 {
				return false
			}
			i += j - 1 // the newline is next
		default:
			return false
		}
	}
	return newline
}

// stringValue returns the value of a string literal token ('...', E'...', U&'...',
// $tag$...$tag$), or false for other literals (B'...', X'...', N'...') and unterminated ones.
func stringValue(s string) (string, bool) {
	switch {
	case len(s) > 0 && s[0] == '$':
		tag := s[:strings.IndexByte(s[1:], '$')+2] // the lexer guarantees the closing '$'
		if len(s) < 2*len(tag) || !strings.HasSuffix(s, tag) {
			return "", false
		}
		return s[len(tag) : len(s)-len(tag)], true
	case len(s) > 0 && s[0] == '\'':
		return quotedValue(s[1:], false)
	case len(s) > 1 && s[0]|0x20 == 'e' && s[1] == '\'':
		return quotedValue(s[2:], true)
	case len(s) > 2 && s[0]|0x20 == 'u' && s[1] == '&' && s[2] == '\'':
		v, ok := quotedValue(s[3:], false)
		return decodeUnicodeEscapes(v), ok
	}
	return "", false
}

// quotedValue decodes the body of a quoted string (after its opening quote): doubled
// quotes, and with backslash set the escapes of an E'...' string. It reports false if the
// closing quote is missing.
func quotedValue(s string, backslash bool) (string, bool) {
	if !backslash && strings.Count(s, "'") == 1 && strings.HasSuffix(s, "'") {
		return s[:len(s)-1], true // the common case: nothing to decode
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\'':
			return b.String(), i == len(s)-1
		case c == '\\' && backslash && i+1 < len(s):
			i += decodeEscape(&b, s[i+1:])
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// decodeEscape writes the character a backslash escape stands for and returns how many
// bytes after the backslash it used: \b \f \n \r \t, \ooo octal, \xhh hex, \uXXXX,
// \UXXXXXXXX, and any other byte as itself.
func decodeEscape(b *strings.Builder, s string) int {
	switch c := s[0]; c {
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'x':
		n, v := 0, 0
		for n < 2 && n+1 < len(s) && isHex(s[n+1]) {
			v = v<<4 | hexVal(s[n+1])
			n++
		}
		if n == 0 {
			b.WriteByte('x')
			return 1
		}
		b.WriteByte(byte(v))
		return n + 1
	case 'u', 'U':
		digits := 4
		if c == 'U' {
			digits = 8
		}
		if r, ok := parseHex(s, 1, digits); ok && utf8.ValidRune(r) {
			b.WriteRune(r)
			return digits + 1
		}
		b.WriteByte(c)
	default:
		if '0' <= c && c <= '7' {
			n, v := 1, int(c-'0')
			for n < 3 && n < len(s) && '0' <= s[n] && s[n] <= '7' {
				v = v<<3 | int(s[n]-'0')
				n++
			}
			b.WriteByte(byte(v))
			return n
		}
		b.WriteByte(c)
	}
	return 1
}

func isHex(c byte) bool { return isDigit(c) || ('a' <= c|0x20 && c|0x20 <= 'f') }

func hexVal(c byte) int {
	if isDigit(c) {
		return int(c - '0')
	}
	return int(c|0x20-'a') + 10
}
