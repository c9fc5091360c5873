// Package console is the language of the PgBouncer-compatible admin console (the
// "pgbouncer" and "pgmux" virtual databases): it splits a simple Query into statements,
// parses each into a verb and its arguments, checks the client's role and the arguments,
// runs the command on a Backend and encodes the answer (result sets, CommandComplete,
// errors with their SQLSTATE). What the commands do, and the SHOW views, are the
// Backend's (package proxy's Server); the console's login and its message loop are
// package proxy's too.
package console

import (
	"strings"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Role is what a console client may do.
type Role int8

const (
	RoleNone  Role = iota // not a console client
	RoleStats             // stats_users: SHOW only
	RoleAdmin             // admin_users: every command
)

func (r Role) String() string {
	switch r {
	case RoleStats:
		return "stats"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Error is a console command's refusal as PgBouncer's admin_error sends every one
// (admin.c): an ERROR with SQLSTATE 08P01, its default when none is given, whatever the
// cause: a syntax error, a missing privilege, an unknown database or client, a SET that
// failed. Only a failed RELOAD has a code of its own there (F0000).
func Error(format string, args ...any) *pgerr.Error {
	return pgerr.New(pgerr.ProtocolViolation, format, args...)
}

// Backend carries out the console's commands. db "" means every database. An error
// that is a *pgerr.Error reaches the client as it is; any other as an internal error.
type Backend interface {
	// Show returns SHOW what's answer (what is upper-cased): RowDescription, DataRows,
	// CommandComplete (see Result), or an error for an unknown view.
	Show(what string) ([]byte, error)
	Pause(db string) error
	Resume(db string) error
	Suspend() error
	Disable(db string, disable bool) error
	Reconnect(db string) error
	WaitClose(db string) error
	Kill(db string) error
	KillClient(id string) error
	Reload() error
	// Set changes one setting: key and value as written. notes are NOTICEs
	// (Notice) sent before the answer's CommandComplete: a setting accepted but not
	// changed says so there.
	Set(key, value string) (notes []byte, err error)
	// Shutdown validates SHUTDOWN's argument ("" or a mode) and returns what to do once
	// the answer has been sent.
	Shutdown(how string) (after func(), err error)
}

// Client is one console client's side of the console.
type Client struct {
	Backend Backend
	Role    Role
	User    string
	Log     Logger // where commands other than SHOW are logged; nil: nowhere
}

// Logger is where the console logs the commands it runs (a *zap.Logger will do).
type Logger interface {
	Info(msg string, fields ...zap.Field)
}

// Answer runs each statement of a simple Query's text and returns the whole answer,
// ending with ReadyForQuery, and an action to run once it has been sent (SHUTDOWN). The
// first statement that fails ends the answer with its error, which failed returns too.
// A query with no statement (empty, blanks, semicolons) is a syntax error, 08P01, not
// PostgreSQL's EmptyQueryResponse: PgBouncer's console matches every query against its
// command patterns, which need a word, and answers one that matches none so.
func (c Client) Answer(q string) (out []byte, after func(), failed *pgerr.Error) {
	stmts := splitStatements(q)
	if len(stmts) == 0 {
		failed = syntaxError(q)
		out = failed.Append(out)
	}
	for _, st := range stmts {
		res, then, err := c.run(st)
		if err != nil {
			failed = asError(err)
			out = failed.Append(out)
			break
		}
		out = append(out, res...)
		if then != nil {
			after = then
		}
	}
	return wire.ReadyForQuery(out, 'I'), after, failed
}

func asError(err error) *pgerr.Error {
	if pe, ok := err.(*pgerr.Error); ok {
		return pe
	}
	return pgerr.New(pgerr.InternalError, "%v", err)
}

// run parses and runs one statement.
func (c Client) run(stmt string) (out []byte, after func(), err error) {
	verb, args, err := parse(stmt)
	if err != nil {
		return nil, nil, err
	}
	if verb == "SHOW" {
		if len(args) != 1 {
			return nil, nil, syntaxError(stmt)
		}
		what := strings.ToUpper(args[0])
		if what == "FDS" && c.Role != RoleAdmin {
			// As PgBouncer: SHOW FDS shows every client's cancel key.
			return nil, nil, Error("admin access needed").
				WithDetail("User %q is a stats_users member: SHOW FDS is for admin_users.", c.User)
		}
		out, err := c.Backend.Show(what)
		return out, nil, err
	}
	cmd, ok := commands[verb]
	if !ok {
		return nil, nil, syntaxError(stmt)
	}
	if verb == "SET" && ignoredSettings[strings.ToLower(args[0])] { // any console user, stats_users too, may send them
		return setIgnored, nil, nil
	}
	if c.Role != RoleAdmin {
		return nil, nil, Error("admin access needed").
			WithDetail("User %q is a stats_users member: only SHOW commands are allowed.", c.User)
	}
	if len(args) < cmd.minArgs || len(args) > cmd.maxArgs {
		return nil, nil, syntaxError(stmt)
	}
	if c.Log != nil {
		c.Log.Info("admin command", zap.String("command", stmt))
	}
	notes, after, err := cmd.run(c.Backend, args)
	if err != nil {
		return nil, nil, err
	}
	return wire.CommandComplete(notes, commandTag(verb, args)), after, nil
}

// commandTag is the CommandComplete tag of a command that succeeded: its verb, except
// for SET, whose tag names what was set ("SET key=value", both unquoted), as
// PgBouncer's admin_set answers; a script or a person reading psql's output sees which
// setting the statement took.
func commandTag(verb string, args []string) string {
	if verb != "SET" {
		return verb
	}
	return "SET " + args[0] + "=" + args[1]
}
