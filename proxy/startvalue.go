package proxy

import (
	"math"
	"strconv"
	"strings"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// A setting only a login may set (post_auth_delay, log_connections) cannot be asked about
// with set_config on a server in use (55P02 whatever the value), so the ask's query
// answers its type and limits (startask.go) and the value is read here as PostgreSQL's
// login reads it (guc.c's parse_and_validate_value): a boolean (pgBool), an integer or a
// real with an optional unit (parse_int, parse_real, convert_to_base_unit), a member of
// an enum. A value it would not take refuses the login with its message (22023): for
// post_auth_delay=x `invalid value for parameter "post_auth_delay": "x"`, for 1h `3600 s
// is outside the valid range for parameter "post_auth_delay" (0 .. 2147)`. Not checked:
// an enum's values hidden from pg_settings (aliases an extension may take) and check
// hooks, which only the server runs; neither exists for PostgreSQL's own login-only
// settings.

// loginType is a login-only setting's type and limits as pg_settings shows them.
type loginType struct {
	vartype  string // bool, integer, real, string or enum
	unit     string // "", "ms", "s", "min", "B", "kB", "MB", or a block's size ("8kB")
	min, max string
	enumvals []string
}

// loginTypeFields is the ask's expression for a login-only setting's type and limits,
// over pg_show_all_settings() as s, fields separated by newlines (loginTypeOf reads it).
const loginTypeFields = "s.vartype || E'\\n' || COALESCE(s.unit, '') || E'\\n' || COALESCE(s.min_val, '') || E'\\n' || " +
	"COALESCE(s.max_val, '') || E'\\n' || COALESCE(pg_catalog.array_to_string(s.enumvals, E'\\n'), '')"

// loginTypeOf reads loginTypeFields' answer.
func loginTypeOf(mark string) loginType {
	f := strings.Split(mark, "\n")
	g := loginType{vartype: f[0]}
	if len(f) >= 4 {
		g.unit, g.min, g.max = f[1], f[2], f[3]
	}
	if len(f) >= 5 && f[4] != "" {
		g.enumvals = f[4:]
	}
	return g
}

// loginValueRefusal is PostgreSQL's refusal of value for the login-only setting key (as
// the client wrote its name) of type g, nil where it takes the value.
func loginValueRefusal(key, value string, g loginType) *pgerr.Error {
	invalid := func(hint string) *pgerr.Error {
		e := pgerr.New(pgerr.InvalidParameterValue, "invalid value for parameter \"%s\": \"%s\"", key, value)
		e.Hint = hint
		return e
	}
	switch g.vartype {
	case "bool":
		if _, ok := pgBool(value); !ok {
			return pgerr.New(pgerr.InvalidParameterValue, "parameter \"%s\" requires a Boolean value", key)
		}
	case "integer":
		v, hint, ok := gucInt(value, g.unit)
		if !ok {
			return invalid(hint)
		}
		lo, err1 := strconv.ParseInt(g.min, 10, 64)
		hi, err2 := strconv.ParseInt(g.max, 10, 64)
		if err1 == nil && err2 == nil && (v < lo || v > hi) {
			return pgerr.New(pgerr.InvalidParameterValue, "%d%s is outside the valid range for parameter \"%s\" (%s .. %s)",
				v, unitSuffix(g.unit), key, g.min, g.max)
		}
	case "real":
		v, hint, ok := gucReal(value, g.unit)
		if !ok {
			return invalid(hint)
		}
		lo, err1 := strconv.ParseFloat(g.min, 64)
		hi, err2 := strconv.ParseFloat(g.max, 64)
		if err1 == nil && err2 == nil && (v < printedLimit(lo) || v > printedLimit(hi)) {
			return pgerr.New(pgerr.InvalidParameterValue, "%s%s is outside the valid range for parameter \"%s\" (%s .. %s)",
				cFormatG(v), unitSuffix(g.unit), key, g.min, g.max)
		}
	case "enum":
		if len(g.enumvals) == 0 {
			return nil
		}
		for _, e := range g.enumvals {
			if asciiFold(value, e) {
				return nil
			}
		}
		return invalid("Available values: " + strings.Join(g.enumvals, ", ") + ".")
	}
	return nil
}

// unitSuffix is the unit after a value in PostgreSQL's range message: " s", or none.
func unitSuffix(unit string) string {
	if unit == "" {
		return ""
	}
	return " " + unit
}

// printedLimit is a real setting's limit as the server has it, from pg_settings' text
// (%g): the largest double prints as 1.79769e+308, which reads back smaller.
func printedLimit(v float64) float64 {
	switch cFormatG(v) {
	case cFormatG(math.MaxFloat64):
		return math.MaxFloat64
	case cFormatG(-math.MaxFloat64):
		return -math.MaxFloat64
	}
	return v
}

// cFormatG is PostgreSQL's printf %g of v (src/port/snprintf.c: C's, but for its own
// spelling of NaN and the infinities).
func cFormatG(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// The hints PostgreSQL gives for a value whose unit it does not know.
const (
	memoryUnitsHint = `Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".`
	timeUnitsHint   = `Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".`
)

// gucInt reads v as PostgreSQL's parse_int does for a setting whose unit is unit: an
// integer in C's strtol base 0 (0x hex, 0 octal), or where that stops at a '.', an 'e' or
// overflows, a real (strtod); blanks; a unit; rounded half to even. hint is
// PostgreSQL's for a refusal that has one.
func gucInt(v, unit string) (n int64, hint string, ok bool) {
	val, end, overflow := cStrtol(v)
	if end < len(v) && (v[end] == '.' || v[end] == 'e' || v[end] == 'E') || overflow {
		var erange bool
		val, end, erange = cStrtod(v)
		if erange {
			return 0, "", false
		}
	}
	if end == 0 || math.IsNaN(val) {
		return 0, "", false
	}
	val, hint, ok = withUnit(val, v[end:], unit)
	if !ok {
		return 0, hint, false
	}
	val = math.RoundToEven(val)
	if val > math.MaxInt32 || val < math.MinInt32 {
		return 0, "Value exceeds integer range.", false
	}
	return int64(val), "", true
}

// gucReal reads v as PostgreSQL's parse_real does: C's strtod, blanks, a unit.
func gucReal(v, unit string) (float64, string, bool) {
	val, end, erange := cStrtod(v)
	if end == 0 || erange || math.IsNaN(val) {
		return 0, "", false
	}
	return withUnit(val, v[end:], unit)
}

// withUnit applies the text after a number, rest, to val: blanks, then nothing or a unit
// of the setting's (convert_to_base_unit).
func withUnit(val float64, rest, unit string) (float64, string, bool) {
	rest = strings.TrimLeft(rest, cSpaces)
	if rest == "" {
		return val, "", true
	}
	table, memory := unitTable(unit)
	if table == nil {
		return 0, "", false // the setting takes no unit: no hint
	}
	hint := timeUnitsHint
	if memory {
		hint = memoryUnitsHint
	}
	// At most three characters of unit, then blanks only.
	n := 0
	for n < len(rest) && n < 3 && !strings.ContainsRune(cSpaces, rune(rest[n])) {
		n++
	}
	name := rest[:n]
	if strings.TrimLeft(rest[n:], cSpaces) != "" {
		return 0, hint, false
	}
	for i, u := range table {
		if u.name != name {
			continue
		}
		c := val * u.mult
		if i+1 < len(table) {
			// A fraction rounds to the next smaller unit (30.1GB to whole MB).
			c = math.RoundToEven(c/table[i+1].mult) * table[i+1].mult
		}
		return c, "", true
	}
	return 0, hint, false
}

// unitConv is a unit and how many of a setting's base unit it is.
type unitConv struct {
	name string
	mult float64
}

// unitTable is PostgreSQL's conversion table (guc.c) for a setting's base unit as
// pg_settings names it, largest first; nil for a setting without one. memory tells
// which hint goes with it.
func unitTable(unit string) (table []unitConv, memory bool) {
	var d, h, m, s, ms, us float64
	switch unit {
	case "ms":
		d, h, m, s, ms, us = 1000*60*60*24, 1000*60*60, 1000*60, 1000, 1, 1.0/1000
	case "s":
		d, h, m, s, ms, us = 60*60*24, 60*60, 60, 1, 1.0/1000, 1.0/(1000*1000)
	case "min":
		d, h, m, s, ms, us = 60*24, 60, 1, 1.0/60, 1.0/(1000*60), 1.0/(1000*1000*60)
	default:
		kb, ok := memoryUnitKB(unit)
		if !ok {
			return nil, false
		}
		return []unitConv{{"TB", 1024.0 * 1024.0 * 1024.0 / kb}, {"GB", 1024.0 * 1024.0 / kb}, {"MB", 1024.0 / kb},
			{"kB", 1.0 / kb}, {"B", 1.0 / (kb * 1024)}}, true
	}
	return []unitConv{{"d", d}, {"h", h}, {"min", m}, {"s", s}, {"ms", ms}, {"us", us}}, false
}

// memoryUnitKB is a memory base unit's size in kB: B, kB, MB, or a block ("8kB").
func memoryUnitKB(unit string) (float64, bool) {
	switch unit {
	case "B":
		return 1.0 / 1024, true
	case "kB":
		return 1, true
	case "MB":
		return 1024, true
	}
	n, ok := strings.CutSuffix(unit, "kB")
	if !ok {
		return 0, false
	}
	kb, err := strconv.Atoi(n)
	return float64(kb), err == nil && kb > 0
}

// cSpaces are the characters C's isspace takes in the C locale.
const cSpaces = " \t\n\v\f\r"

// cStrtol reads the longest prefix of v that C's strtol(v, &end, 0) reads, on a 64-bit
// long: its value, the end of what it read (0 for nothing), and whether it overflowed.
func cStrtol(v string) (val float64, end int, overflow bool) {
	i := len(v) - len(strings.TrimLeft(v, cSpaces))
	neg := false
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		neg = v[i] == '-'
		i++
	}
	base := 10
	switch {
	case i+2 < len(v) && v[i] == '0' && (v[i+1] == 'x' || v[i+1] == 'X') && hexDigit(v[i+2]) >= 0:
		base, i = 16, i+2
	case i < len(v) && v[i] == '0':
		base = 8
	}
	from := i
	var acc uint64
	for ; i < len(v); i++ {
		d := hexDigit(v[i])
		if d < 0 || d >= base {
			break
		}
		if acc > (math.MaxUint64-uint64(d))/uint64(base) {
			overflow = true
		} else {
			acc = acc*uint64(base) + uint64(d)
		}
	}
	if i == from {
		return 0, 0, false
	}
	if neg && acc > 1<<63 || !neg && acc > math.MaxInt64 {
		overflow = true
	}
	val = float64(acc)
	if neg {
		val = -val
	}
	return val, i, overflow
}

// cStrtod reads the longest prefix of v that glibc's strtod reads: a decimal or
// hexadecimal number, inf, infinity or nan; its value, the end of what it read (0 for
// nothing), and whether it is out of a double's range (ERANGE: overflow, or underflow
// of a value that is not zero).
func cStrtod(v string) (val float64, end int, erange bool) {
	i := len(v) - len(strings.TrimLeft(v, cSpaces))
	start := i
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		i++
	}
	sign := v[start:i]
	rest := strings.ToLower(v[i:])
	switch {
	case strings.HasPrefix(rest, "infinity"):
		return math.Inf(signOf(sign)), i + len("infinity"), false
	case strings.HasPrefix(rest, "inf"):
		return math.Inf(signOf(sign)), i + len("inf"), false
	case strings.HasPrefix(rest, "nan"):
		i += len("nan")
		if j := strings.IndexByte(v[i:], ')'); i < len(v) && v[i] == '(' && j > 0 && nanChars(v[i+1:i+j]) {
			i += j + 1
		}
		return math.NaN(), i, false
	}
	hex := len(rest) > 2 && rest[0] == '0' && rest[1] == 'x'
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	if hex {
		digit = func(c byte) bool { return hexDigit(c) >= 0 }
		i += 2
	}
	mant := i
	nonzero := false
	for ; i < len(v) && digit(v[i]); i++ {
		nonzero = nonzero || v[i] != '0'
	}
	if i < len(v) && v[i] == '.' {
		for i++; i < len(v) && digit(v[i]); i++ {
			nonzero = nonzero || v[i] != '0'
		}
	}
	if i == mant || i == mant+1 && v[mant] == '.' {
		if hex { // "0x" with no digits after: the 0 alone
			return 0, mant - 1, false
		}
		return 0, 0, false
	}
	text := sign + v[mant:i]
	if hex {
		text = sign + "0x" + v[mant:i]
	}
	expChar, expMark := byte('e'), "e"
	if hex {
		expChar, expMark = 'p', "p"
	}
	if i < len(v) && v[i]|0x20 == expChar { // an exponent, where digits follow
		j := i + 1
		if j < len(v) && (v[j] == '+' || v[j] == '-') {
			j++
		}
		k := j
		for k < len(v) && v[k] >= '0' && v[k] <= '9' {
			k++
		}
		if k > j {
			text += expMark + v[i+1:k]
			i = k
		}
	}
	if hex && !strings.Contains(text, "p") {
		text += "p0" // Go wants the exponent C's strtod does without
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, 0, false
	}
	under := nonzero && math.Abs(f) < 0x1p-1022
	return f, i, math.IsInf(f, 0) || under
}

func signOf(sign string) int {
	if sign == "-" {
		return -1
	}
	return 1
}

// nanChars reports whether s is an n-char-sequence: letters, digits and '_'.
func nanChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// hexDigit is c's value as a hexadecimal digit, -1 for none.
func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
