package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Two kinds of startup value are not asked of a server (checkable): custom (dotted)
// names and search_path, whose values differ per client. What PostgreSQL checks of them
// at login needs no server, only their syntax, so a login checks it here, as the server
// would, and refuses what PostgreSQL refuses with its FATAL. Both checks allocate
// nothing for a value PostgreSQL takes: they run at every login.

// localRefusal is the FATAL PostgreSQL answers a login with for the startup parameter
// key=v that it refuses by syntax alone, nil for one it takes (or leaves to a server).
func localRefusal(key, v string) *pgerr.Error {
	switch {
	case strings.IndexByte(key, '.') >= 0 && !customName(key):
		return pgerr.Fatal(invalidName, "invalid configuration parameter name \"%s\"", key).
			WithDetail("Custom parameter names must be two or more simple identifiers separated by dots.")
	case strings.EqualFold(key, "search_path") && !identList(v):
		return pgerr.Fatal(pgerr.InvalidParameterValue, "invalid value for parameter \"search_path\": \"%s\"", v).
			WithDetail("List syntax is invalid.")
	}
	return nil
}

// invalidName is PostgreSQL's invalid_name SQLSTATE.
const invalidName = "42602"

// customName reports whether PostgreSQL takes name as a custom parameter's: two or more
// simple identifiers separated by dots (a letter, '_' or a non-ASCII byte first, then
// those, digits or '$'). A name with a dot and not this is refused (42602) at login
// and by SET.
func customName(name string) bool {
	start, dot := true, false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if start {
				return false
			}
			dot, start = true, true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= 0x80:
			start = false
		case !start && (c >= '0' && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return dot && !start
}

// identList reports whether PostgreSQL reads v as a comma-separated list of identifiers
// (its SplitIdentifierString, which search_path's check runs): each quoted ("" inside
// for a quote) or a run without commas or spaces, spaces allowed around them, nothing
// else; an empty list is one.
func identList(v string) bool {
	i := skipSpace(v, 0)
	if i == len(v) {
		return true
	}
	for {
		if v[i] == '"' {
			for i++; ; i += 2 {
				q := strings.IndexByte(v[i:], '"')
				if q < 0 {
					return false // no closing quote
				}
				i += q
				if i+1 >= len(v) || v[i+1] != '"' {
					break
				}
			}
			i++
		} else {
			j := i
			for j < len(v) && v[j] != ',' && !isSpace(v[j]) {
				j++
			}
			if j == i {
				return false // an empty name
			}
			i = j
		}
		i = skipSpace(v, i)
		if i == len(v) {
			return true
		}
		if v[i] != ',' {
			return false
		}
		i = skipSpace(v, i+1)
		if i == len(v) {
			return false // a name expected after the comma
		}
	}
}

// isSpace is PostgreSQL's scanner_isspace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func skipSpace(v string, i int) int {
	for i < len(v) && isSpace(v[i]) {
		i++
	}
	return i
}
