package link

import (
	"bytes"
	"math"

	"github.com/pgmux/pgmux/protocol/wire"
)

// The messages of statement renaming: a client's statement names mean nothing on the
// server it gets next, so pgmux reads the names out of Parse, Bind, Describe and Close
// (the Fields functions) and sends the messages again under its own names, or builds the
// hidden ones it puts in front (the Append functions). Every Append function appends one
// whole message (or two, for AppendNoop) to dst and returns the extended slice.

// NoopStmt is the throwaway statement name pgmux parses and closes to have the server
// produce a ParseComplete or CloseComplete the client is owed, in order.
const NoopStmt = "pgmux_noop"

// noTypes is a Parse's parameter type section with no types.
var noTypes = []byte{0, 0}

// ParseFields splits a Parse body into the statement name, the query text and the
// parameter type section (verbatim, its count first). ok is false for a body without
// its two strings.
func ParseFields(body []byte) (name, query, types []byte, ok bool) { return twoStrings(body) }

// BindFields splits a Bind body into the portal name, the statement name and what
// follows them (formats, parameters, result formats; verbatim). ok is false for a body
// without its two strings.
func BindFields(body []byte) (portal, stmt, tail []byte, ok bool) { return twoStrings(body) }

// twoStrings splits two C strings off the front of b (SplitFields).
func twoStrings(b []byte) (first, second, rest []byte, ok bool) {
	f := SplitFields(b)
	if !f.OK() {
		return nil, nil, nil, false
	}
	return f.First(b), f.Second(b), f.Rest(b), true
}

// Fields is where the two C strings at the front of a Parse or Bind body end (a Parse's
// statement name and query text, a Bind's portal and statement name): offsets, not
// views, so the split of a message's body holds for any copy of its bytes, and it is
// one word to keep or return (ParseFields' three views and flag are ten). A client's
// session splits each Parse and Bind once and keeps the split for the message's later
// looks (proxy's msgFields). The zero Fields is a body without its two strings.
type Fields struct {
	firstEnd  uint32 // the first string's NUL
	secondEnd uint32 // the second string's NUL; 0 (where it cannot be): none
}

// SplitFields finds the ends of body's two C strings, as two wire.CString calls do. It
// searches for them itself, where CString's two calls and their error results were most
// of the cost; an empty string, the unnamed statement or portal of most such messages,
// takes no search. A body of 2 GiB or more (beyond any message a reader takes) is not
// split.
func SplitFields(body []byte) Fields {
	if len(body) > math.MaxInt32 {
		return Fields{}
	}
	i := 0
	if len(body) == 0 || body[0] != 0 {
		if i = bytes.IndexByte(body, 0); i < 0 {
			return Fields{}
		}
	}
	j := i + 1
	if j == len(body) || body[j] != 0 {
		k := bytes.IndexByte(body[j:], 0)
		if k < 0 {
			return Fields{}
		}
		j += k
	}
	return Fields{firstEnd: uint32(i), secondEnd: uint32(j)}
}

// OK reports whether the body had its two strings; the other methods need it.
func (f Fields) OK() bool { return f.secondEnd != 0 }

// First is the first string of body (a Parse's statement name, a Bind's portal).
func (f Fields) First(body []byte) []byte { return body[:f.firstEnd] }

// Second is the second string of body (a Parse's query text, a Bind's statement name).
func (f Fields) Second(body []byte) []byte { return body[f.firstEnd+1 : f.secondEnd] }

// Rest is what follows the two strings in body (a Parse's parameter types, a Bind's
// formats and parameters), verbatim.
func (f Fields) Rest(body []byte) []byte { return body[f.secondEnd+1:] }

// TargetFields splits a Describe or Close body into its kind ('S' statement, 'P'
// portal) and name. ok is false for a body without a kind and a terminated name.
func TargetFields(body []byte) (kind byte, name []byte, ok bool) {
	if len(body) < 2 {
		return 0, nil, false
	}
	name, _, err := wire.CString(body[1:])
	if err != nil {
		return 0, nil, false
	}
	return body[0], name, true
}

// AppendParse appends a Parse of query under name, with the parameter type section
// types, verbatim (its count first).
func AppendParse(dst []byte, name, query string, types []byte) []byte {
	dst, s := wire.Begin(dst, 'P')
	dst = wire.AppendString(dst, name)
	dst = wire.AppendString(dst, query)
	dst = append(dst, types...)
	return wire.Finish(dst, s)
}

// AppendEmptyParse appends a Parse of the empty query under name, without parameters.
func AppendEmptyParse(dst []byte, name string) []byte {
	return AppendParse(dst, name, "", noTypes)
}

// AppendStmtParse appends a Parse of query under name without declared parameter types.
func AppendStmtParse(dst []byte, name, query string) []byte {
	return AppendParse(dst, name, query, noTypes)
}

// AppendParseAs appends a client's Parse under name: rest is its body after the
// client's name (query text and parameter types, verbatim).
func AppendParseAs(dst []byte, name string, rest []byte) []byte {
	dst, s := wire.Begin(dst, 'P')
	dst = wire.AppendString(dst, name)
	dst = append(dst, rest...)
	return wire.Finish(dst, s)
}

// AppendClose appends a Close of the statement (kind 'S') or portal ('P') name.
func AppendClose(dst []byte, kind byte, name string) []byte {
	dst, s := wire.Begin(dst, 'C')
	dst = append(dst, kind)
	dst = wire.AppendString(dst, name)
	return wire.Finish(dst, s)
}

// AppendNoop appends a Close and an empty Parse of the statement name: the server
// answers CloseComplete and ParseComplete, whatever it had under that name.
func AppendNoop(dst []byte, name string) []byte {
	dst = AppendClose(dst, 'S', name)
	return AppendEmptyParse(dst, name)
}

// AppendBindAs appends a client's Bind of portal to the statement stmt: tail is its body
// after the two names (BindFields).
func AppendBindAs(dst, portal []byte, stmt string, tail []byte) []byte {
	dst, s := wire.Begin(dst, 'B')
	dst = append(append(dst, portal...), 0)
	dst = wire.AppendString(dst, stmt)
	dst = append(dst, tail...)
	return wire.Finish(dst, s)
}

// AppendDescribeStmt appends a Describe of the statement stmt.
func AppendDescribeStmt(dst []byte, stmt string) []byte {
	dst, s := wire.Begin(dst, 'D')
	dst = append(dst, 'S')
	dst = wire.AppendString(dst, stmt)
	return wire.Finish(dst, s)
}

// AppendRunUnnamed appends a Parse of query as the unnamed statement, a Bind of it to
// the unnamed portal without parameters and an Execute: a statement run in the extended
// protocol, so it can go anywhere in a client's extended-protocol request.
func AppendRunUnnamed(dst []byte, query string) []byte {
	dst = AppendStmtParse(dst, "", query)
	// Bind: portal "", statement "", no parameter formats, parameters or result formats.
	dst = append(dst, 'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0)
	// Execute: portal "", no row limit.
	return append(dst, 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0)
}
