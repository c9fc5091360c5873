package console

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/wire"
)

// command is one console verb other than SHOW: its argument count and action, which
// returns NOTICEs to send first (SET of a setting that cannot change now) and what to do
// once the answer is sent. The answer is CommandComplete with the verb as tag (SET's
// names the setting, commandTag).
type command struct {
	minArgs, maxArgs int
	run              func(b Backend, args []string) (notes []byte, after func(), err error)
}

// commands is the console's verb table (SHOW is handled apart, in run).
var commands = map[string]command{
	"PAUSE":      {0, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Pause(arg(a)) }},
	"RESUME":     {0, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Resume(arg(a)) }},
	"SUSPEND":    {0, 0, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Suspend() }},
	"DISABLE":    {1, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Disable(a[0], true) }},
	"ENABLE":     {1, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Disable(a[0], false) }},
	"RECONNECT":  {0, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Reconnect(arg(a)) }},
	"WAIT_CLOSE": {0, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.WaitClose(arg(a)) }},
	"KILL":       {1, 1, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Kill(a[0]) }},
	"KILL_CLIENT": {1, 1, func(b Backend, a []string) ([]byte, func(), error) {
		return nil, nil, b.KillClient(a[0])
	}},
	"RELOAD": {0, 0, func(b Backend, a []string) ([]byte, func(), error) { return nil, nil, b.Reload() }},
	"SET":    {2, 64, set}, // set checks for exactly one value itself, with a hint
	"SHUTDOWN": {0, 1, func(b Backend, a []string) ([]byte, func(), error) {
		after, err := b.Shutdown(arg(a))
		return nil, after, err
	}},
}

func arg(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// set parses SET key = value (or key TO value). The value is one token, as PgBouncer
// takes it: a word or number, or a quoted string ('DISCARD ALL'; a doubled quote
// stands for a quote). Anything more (DISCARD ALL unquoted, a, b) is a syntax error:
// running the words together would store a value nobody wrote.
func set(b Backend, args []string) ([]byte, func(), error) {
	if !setForm(args) {
		return nil, nil, Error("usage: SET key = value").
			WithHint("The value is one word or number, or a quoted string: SET server_reset_query = 'DISCARD ALL'.")
	}
	notes, err := b.Set(args[0], args[2])
	return notes, nil, err
}

// ignoredSettings are the session settings drivers set on connect (some whatever the
// server reported), which the console accepts and ignores, as PgBouncer's fake_set does.
var ignoredSettings = map[string]bool{
	"client_encoding": true, "default_transaction_isolation": true, "standard_conforming_strings": true,
	"datestyle": true, "timezone": true, "extra_float_digits": true,
}

// setIgnored is the answer to a SET of one of ignoredSettings: a NOTICE, then SET.
var setIgnored = wire.CommandComplete(Notice(nil, "SET ignored", ""), "SET")

// setForm reports whether SET's arguments are key = value (or key TO value).
func setForm(args []string) bool {
	return len(args) == 3 && (args[1] == "=" || strings.EqualFold(args[1], "to"))
}

// The longest SET key and value PgBouncer's console takes, in bytes as written (quotes
// and doubled quotes included): admin_parse_query copies them into buffers of 64 and
// 256 bytes and answers "bad arguments" to one that does not fit, and to an empty key.
// So its tag, "SET key=value" in a buffer of 512, is never cut.
const (
	maxSetKey   = 63
	maxSetValue = 255
)

// setFits checks a well-formed SET's key and value (setForm) against PgBouncer's
// limits, given their sizes as written.
func setFits(args []string, sizes []int) error {
	switch {
	case args[0] == "":
		return Error("bad arguments: SET needs a setting name")
	case sizes[0] > maxSetKey:
		return Error("bad arguments: the setting name is %d bytes long, more than the %d the console takes", sizes[0], maxSetKey)
	case sizes[2] > maxSetValue:
		return Error("bad arguments: the value is %d bytes long as written, more than the %d the console takes", sizes[2], maxSetValue).
			WithHint("Set it in the configuration file and RELOAD.")
	}
	return nil
}

// splitStatements splits a query on semicolons outside quotes and drops empty statements.
func splitStatements(q string) []string {
	var out []string
	start := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ';':
			out = appendStmt(out, q[start:i])
			start = i + 1
		}
	}
	return appendStmt(out, q[start:])
}

func appendStmt(out []string, st string) []string {
	if st = strings.TrimSpace(st); st != "" {
		out = append(out, st)
	}
	return out
}

// tokenize splits a console statement into words: bare words, "quoted identifiers",
// 'quoted strings' (both with doubled quotes as escapes), "=" and ",". sizes are the
// words' lengths as written, quotes included.
func tokenize(stmt string) (words []string, sizes []int, err error) {
	for i := 0; i < len(stmt); {
		c := stmt[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '=' || c == ',':
			words = append(words, string(c))
			sizes = append(sizes, 1)
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(stmt) {
					return nil, nil, Error("unterminated quoted string in %q", stmt)
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
			words = append(words, b.String())
			sizes = append(sizes, j+1-i)
			i = j + 1
		default:
			j := i
			for j < len(stmt) && !strings.ContainsRune(" \t\r\n='\",", rune(stmt[j])) {
				j++
			}
			words = append(words, stmt[i:j])
			sizes = append(sizes, j-i)
			i = j
		}
	}
	return words, sizes, nil
}
