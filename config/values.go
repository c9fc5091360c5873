package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// parseInt parses a decimal integer and checks it against [lo, hi].
func parseInt(s string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is out of range (%d..%d)", v, lo, hi)
	}
	return v, nil
}

// parseCInt parses a [pgbouncer] integer as PgBouncer's parser does (C's strtol in
// base 0, the whole text): decimal, hexadecimal after 0x, octal after a leading 0
// ("010" is 8, "08" an error), with an optional sign; and checks it against [lo, hi].
// PgBouncer stores what strtol gives in an int, cutting a value too large; pgmux refuses
// it. The values of [databases] and [users] lines are decimal (parseInt), as there.
func parseCInt(s string, lo, hi int) (int, error) {
	t := strings.TrimSpace(s)
	digits, neg := strings.CutPrefix(t, "-")
	if !neg {
		digits, _ = strings.CutPrefix(t, "+")
	}
	base := 10
	switch {
	case len(digits) > 2 && (digits[:2] == "0x" || digits[:2] == "0X"):
		base, digits = 16, digits[2:]
	case len(digits) > 1 && digits[0] == '0':
		base, digits = 8, digits[1:]
	}
	u, err := strconv.ParseUint(digits, base, 63) // a base given: no sign, prefix or underscore
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	v := int(u)
	if neg {
		v = -v
	}
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s is out of range (%d..%d)", t, lo, hi)
	}
	return v, nil
}

// parseBool accepts PgBouncer's 0/1 and the usual words for them.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use 0 or 1)", s)
}

// formatBool prints a boolean the way PgBouncer's SHOW CONFIG does.
func formatBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// durationUnits maps the unit suffixes accepted after a number. No suffix means seconds,
// as in PgBouncer; the PostgreSQL spellings (ms, s, min, h, d) are accepted as well.
var durationUnits = map[string]time.Duration{
	"":   time.Second,
	"us": time.Microsecond, "µs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// parseDuration parses a time setting: a number of seconds (possibly fractional, with an
// exponent, or a hexadecimal integer, as PgBouncer's strtod takes them: "1.5", "1e3",
// "0x10"), a number with a unit ("500ms", "5min", "1h"), or a Go duration ("1h30m").
// Negative values are refused.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") {
		n, err := strconv.ParseUint(t[2:], 16, 32)
		if err != nil {
			return 0, notDuration(s)
		}
		return time.Duration(n) * time.Second, nil
	}
	i := numberEnd(t)
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, okUnit := durationUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || !okUnit {
		d, gerr := time.ParseDuration(t)
		if gerr != nil {
			return 0, notDuration(s)
		}
		if d < 0 {
			return 0, fmt.Errorf("%q must not be negative", s)
		}
		return d, nil
	}
	v := f * float64(mult)
	if math.IsNaN(v) || v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return time.Duration(math.Round(v)), nil
}

func notDuration(s string) error {
	return fmt.Errorf("%q is not a duration (seconds, or a number with a unit such as 500ms, 30s, 5min, 1h)", s)
}

// numberEnd returns where the decimal number that t starts with ends: digits and points,
// then an exponent if one follows (e or E, a sign, digits).
func numberEnd(t string) int {
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	if i == 0 || i == len(t) || t[i] != 'e' && t[i] != 'E' {
		return i
	}
	j := i + 1
	if j < len(t) && (t[j] == '+' || t[j] == '-') {
		j++
	}
	k := j
	for k < len(t) && t[k] >= '0' && t[k] <= '9' {
		k++
	}
	if k == j {
		return i // no digits: not an exponent
	}
	return k
}

// formatDuration prints a duration as seconds, as PgBouncer's SHOW CONFIG does ("0.5", "3600").
func formatDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// parseList splits a comma-separated list, trimming blanks and dropping empty items.
func parseList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseListenAddrs parses listen_addr: "*", IPv4/IPv6 literals (brackets optional) or host
// names, comma-separated. IPv6 brackets are removed so callers can use net.JoinHostPort.
func parseListenAddrs(s string) ([]string, error) {
	addrs := parseList(s)
	for i, a := range addrs {
		if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
			a = a[1 : len(a)-1]
			addrs[i] = a
		}
		if a == "*" || net.ParseIP(a) != nil || isHostName(a) {
			continue
		}
		return nil, fmt.Errorf("%q is not an IP address, host name or *", a)
	}
	return addrs, nil
}

// isHostName reports whether s is a plausible DNS name (letters, digits, '-', '_', '.').
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '.' || r == '_' || (r >= '0' && r <= '9') ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// parseMode parses an octal file mode such as "0777" or "777".
func parseMode(s string) (int, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "0o")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal file mode", s)
	}
	return int(v), nil
}

// oneOf checks s (case-insensitively) against allowed and returns its canonical spelling.
func oneOf(s string, allowed ...string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for _, a := range allowed {
		if v == a {
			return a, nil
		}
	}
	return "", fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
}

// unquoteValue removes one pair of matching surrounding quotes from an ini value.
func unquoteValue(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
