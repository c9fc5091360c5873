package sqlscan

import "strings"

// SetConfig is one call of set_config(name, value, is_local) in a statement: the
// function form of SET, which a SELECT can hide anywhere in its text.
type SetConfig struct {
	// Name is the setting's name, lower-cased, when the first argument is a string
	// literal; "" when it is anything else (a parameter, an expression).
	Name string
	// Local is 1 when is_local is the literal true, 0 when it is the literal false, and
	// -1 when it is anything else (a parameter, an expression: unknown until run).
	Local int8
	// Null is the value argument when it is the literal NULL alone (a slice of the input:
	// the token's text), which resets the setting, as SET ... TO DEFAULT does; "" when
	// it is anything else.
	Null string
}

// setConfigTracker spots set_config calls in a token stream and reads their first and
// third arguments. A call nested in another call's arguments is not reported on its own.
type setConfigTracker struct {
	p1, p2, p3 Token // the last three tokens outside a call, most recent first
	open       int   // parenthesis depth inside the call being read; 0 outside
	arg        int   // index of the argument being read
	argToks    int   // tokens in it so far
	first      Token // its first token
	cur        SetConfig
	calls      []SetConfig
}

func (c *setConfigTracker) feed(t Token) {
	if c.open > 0 {
		c.inCall(t)
		return
	}
	if t.Kind == TokLParen && isSetConfig(c.p1) && (c.p2.Kind != TokDot || c.p3.IsKeyword("pg_catalog") ||
		(c.p3.Kind == TokQuotedIdent && c.p3.Text == `"pg_catalog"`)) {
		c.open, c.arg, c.argToks = 1, 0, 0
		c.cur = SetConfig{Local: -1}
	}
	c.p3, c.p2, c.p1 = c.p2, c.p1, t
}

func (c *setConfigTracker) inCall(t Token) {
	switch {
	case t.Kind == TokLParen:
		c.open++
	case t.Kind == TokRParen:
		c.open--
		if c.open == 0 {
			c.endArg()
			c.calls = append(c.calls, c.cur)
			c.p3, c.p2, c.p1 = Token{}, Token{}, t
			return
		}
	case t.Kind == TokComma && c.open == 1:
		c.endArg()
		c.arg++
		c.argToks = 0
		return
	}
	if c.argToks == 0 {
		c.first = t
	}
	c.argToks++
}

// endArg reads the argument just completed, if it is the name or is_local.
func (c *setConfigTracker) endArg() {
	one := c.argToks == 1
	switch c.arg {
	case 0:
		if one && c.first.Kind == TokString {
			c.cur.Name = strings.ToLower(strings.ReplaceAll(stringBody(c.first.Text), "''", "'"))
		}
	case 1:
		if one && c.first.IsKeyword("null") {
			c.cur.Null = c.first.Text
		}
	case 2:
		if one {
			c.cur.Local = literalBool(c.first)
		}
	}
}

// literalBool reads a boolean literal as the server would (true, false, 't', 'off', ...),
// or returns -1.
func literalBool(t Token) int8 {
	s := t.Text
	switch t.Kind {
	case TokIdent:
	case TokString:
		if len(s) < 2 || s[0] != '\'' {
			return -1
		}
		s = stringBody(s)
	default:
		return -1
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "on", "yes", "y", "1":
		return 1
	case "false", "f", "off", "no", "n", "0":
		return 0
	}
	return -1
}

// isSetConfig reports whether t names set_config (a quoted name must match exactly).
func isSetConfig(t Token) bool {
	return t.IsKeyword("set_config") || (t.Kind == TokQuotedIdent && t.Text == `"set_config"`)
}
