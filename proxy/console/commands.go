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
	"SET":    {2, 2, set}, // key and value (parse)
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

// set runs SET key = value (parse has checked its form and lengths).
func set(b Backend, args []string) ([]byte, func(), error) {
	notes, err := b.Set(args[0], args[1])
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
