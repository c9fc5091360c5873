package config

import (
	"errors"
	"fmt"
	"strings"
)

// param is one key=value pair of a connection string.
type param struct{ key, value string }

// parseConnString splits a libpq-style "key=value key='quoted value'" string. Keys are
// taken as written: libpq's and PgBouncer's are case-sensitive (PgBouncer refuses
// HOST=, "unrecognized connection parameter"). Inside single quotes, and in unquoted values, a backslash escapes the next
// character; whitespace is allowed around '='.
func parseConnString(s string) ([]param, error) {
	var out []param
	i := skipSpace(s, 0)
	for i < len(s) {
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		i = skipSpace(s, i)
		if key == "" || i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("expected key=value at %q", truncate(s[start:], 20))
		}
		value, next, err := connValue(s, skipSpace(s, i+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out = append(out, param{key, value})
		i = skipSpace(s, next)
	}
	return out, nil
}

// connValue reads one value starting at s[i], returning it and the index after it.
func connValue(s string, i int) (string, int, error) {
	var b strings.Builder
	quoted := i < len(s) && s[i] == '\''
	if quoted {
		i++
	}
	for ; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case quoted && ch == '\'':
			return b.String(), i + 1, nil
		case !quoted && isSpace(ch):
			return b.String(), i, nil
		default:
			b.WriteByte(ch)
		}
	}
	if quoted {
		return "", i, errors.New("unterminated quoted value")
	}
	return b.String(), i, nil
}

// quoteConnValue renders v for a connection string, quoting when needed.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// unquoteIdent removes SQL identifier quoting ("my db", with "" for a quote) from a
// [databases] or [users] name.
func unquoteIdent(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", fmt.Errorf("unterminated quoted name %s", s)
	}
	inner := s[1 : len(s)-1]
	if strings.Count(inner, `"`)%2 != 0 || strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
		return "", fmt.Errorf("malformed quoted name %s", s)
	}
	return strings.ReplaceAll(inner, `""`, `"`), nil
}
