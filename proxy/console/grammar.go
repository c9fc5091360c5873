package console

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// The console's grammar is PgBouncer's (admin.c's three patterns), statement by
// statement: a command is a word and at most one more, SET is "SET key = value" (or TO).
// A word is letters, digits and underscores (SET query_timeout = 1.5, PAUSE my-db and
// SET x = -1 are syntax errors there, as in PgBouncer), or a "quoted identifier" with
// any characters (a doubled quote stands for one); SET's value may be a 'string' too.
// PgBouncer copies what it matched into buffers of fixed size and answers "bad
// arguments" to a part too long for its buffer: the verb (16 bytes), a command's
// argument or SET's key (64), SET's value (256), each as written, quotes included, with
// room for the final NUL. pgmux refuses the same lengths with the same answer.
//
// Where pgmux differs: a query may hold several statements split by semicolons (PgBouncer
// takes one, with an optional semicolon after it).

// The longest parts PgBouncer's console takes, in bytes as written.
const (
	maxVerb     = 15
	maxArg      = 63 // a command's argument, SET's key
	maxSetValue = 255
)

// token is one word of a statement: its text (unquoted), its length as written, and its
// kind: 'w' a word, '"' a quoted identifier, '\” a string, '=' the equals sign.
type token struct {
	text string
	size int
	kind byte
}

// word reports whether t may stand where PgBouncer's grammar takes a word.
func (t token) word() bool { return t.kind == 'w' || t.kind == '"' }

// parse splits one statement into its verb (upper-cased) and arguments (unquoted; SET's
// are its key and value), or refuses it as PgBouncer would.
func parse(stmt string) (verb string, args []string, err error) {
	toks, err := tokenize(stmt)
	if err != nil {
		return "", nil, err
	}
	if len(toks) == 0 || !toks[0].word() {
		return "", nil, syntaxError(stmt)
	}
	if toks[0].kind == 'w' && strings.EqualFold(toks[0].text, "set") {
		key, value, err := parseSet(stmt, toks[1:])
		return "SET", []string{key, value}, err
	}
	if len(toks) > 2 || len(toks) == 2 && !toks[1].word() {
		return "", nil, syntaxError(stmt)
	}
	if toks[0].size > maxVerb {
		return "", nil, Error("bad arguments: the command is %d bytes long, more than the %d the console takes", toks[0].size, maxVerb)
	}
	if len(toks) == 2 {
		if toks[1].size > maxArg {
			return "", nil, Error("bad arguments: the argument is %d bytes long as written, more than the %d the console takes", toks[1].size, maxArg)
		}
		args = []string{toks[1].text}
	}
	return strings.ToUpper(toks[0].text), args, nil
}

// parseSet parses SET's arguments: key = value, or key TO value.
func parseSet(stmt string, toks []token) (key, value string, err error) {
	if len(toks) != 3 || !toks[0].word() || toks[2].kind == '=' ||
		toks[1].kind != '=' && !(toks[1].kind == 'w' && strings.EqualFold(toks[1].text, "to")) {
		return "", "", syntaxError(stmt).
			WithHint("SET takes key = value; a value that is not letters, digits and underscores is quoted: SET server_reset_query = 'DISCARD ALL', SET query_timeout = '1.5'.")
	}
	switch k, v := toks[0], toks[2]; {
	case k.text == "":
		return "", "", Error("bad arguments: SET needs a setting name")
	case k.size > maxArg:
		return "", "", Error("bad arguments: the setting name is %d bytes long, more than the %d the console takes", k.size, maxArg)
	case v.size > maxSetValue:
		return "", "", Error("bad arguments: the value is %d bytes long as written, more than the %d the console takes", v.size, maxSetValue).
			WithHint("Set it in the configuration file and RELOAD.")
	}
	return toks[0].text, toks[2].text, nil
}

// tokenize splits a console statement into tokens. A character that is none of a word's,
// a quote, '=' or a blank makes the statement a syntax error.
func tokenize(stmt string) ([]token, error) {
	var toks []token
	for i := 0; i < len(stmt); {
		c := stmt[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '=':
			toks = append(toks, token{text: "=", size: 1, kind: '='})
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(stmt) {
					return nil, Error("unterminated quoted string in %q", stmt)
				}
				if stmt[j] == c {
					if j+1 < len(stmt) && stmt[j+1] == c {
						b.WriteByte(c)
						j++
						continue
					}
					break
				}
				b.WriteByte(stmt[j])
			}
			toks = append(toks, token{text: b.String(), size: j + 1 - i, kind: c})
			i = j + 1
		case wordByte(c):
			j := i
			for j < len(stmt) && wordByte(stmt[j]) {
				j++
			}
			toks = append(toks, token{text: stmt[i:j], size: j - i, kind: 'w'})
			i = j
		default:
			return nil, syntaxError(stmt).
				WithHint("Words are letters, digits and underscores: quote a name with other characters (PAUSE \"my-db\") and a SET value (SET query_timeout = '1.5').")
		}
	}
	return toks, nil
}

// wordByte reports whether c may be part of an unquoted word.
func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func syntaxError(stmt string) *pgerr.Error {
	return Error("invalid command %q, use SHOW HELP;", strings.TrimSpace(stmt))
}
