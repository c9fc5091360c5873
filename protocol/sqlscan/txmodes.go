package sqlscan

import "strings"

// TxModes is what a BEGIN or START TRANSACTION statement says of its transaction, packed
// in a byte so that a caller can keep it cheaply: its isolation level, access mode and
// deferrability, each possibly unsaid. The zero value is no statement; a parsed one is
// never zero.
type TxModes uint8

const (
	txBegin      TxModes = 1 << iota // a BEGIN was parsed
	txIsoShift           = 1         // 3 bits: isolation level, 0 unsaid
	txAccShift           = 4         // 2 bits: Access
	txDeferShift         = 6         // 2 bits: 0 unsaid, 1 DEFERRABLE, 2 NOT DEFERRABLE
)

var isolations = [...]string{1: "SERIALIZABLE", 2: "REPEATABLE READ", 3: "READ COMMITTED", 4: "READ UNCOMMITTED"}

// BeginModes reports whether sql is one BEGIN or START TRANSACTION statement and
// nothing more (comments and a final semicolon aside), and what modes it names. A
// statement pgmux cannot read whole (anything but the standard transaction modes) is not
// one.
func BeginModes(sql string) (TxModes, bool) {
	lx := Lexer{src: sql}
	t := lx.Next()
	switch {
	case t.IsKeyword("begin"):
		if t = lx.Next(); t.IsKeyword("work") || t.IsKeyword("transaction") {
			t = lx.Next()
		}
	case t.IsKeyword("start") && lx.Next().IsKeyword("transaction"):
		t = lx.Next()
	default:
		return 0, false
	}
	m := txBegin
	for {
		switch {
		case t.Kind == TokEOF:
			return m, true
		case t.Kind == TokSemicolon:
			if lx.Next().Kind != TokEOF {
				return 0, false
			}
			return m, true
		case t.Kind == TokComma:
		case t.IsKeyword("isolation"):
			if !lx.Next().IsKeyword("level") {
				return 0, false
			}
			iso := 0
			switch t = lx.Next(); {
			case t.IsKeyword("serializable"):
				iso = 1
			case t.IsKeyword("repeatable") && lx.Next().IsKeyword("read"):
				iso = 2
			case t.IsKeyword("read"):
				switch t = lx.Next(); {
				case t.IsKeyword("committed"):
					iso = 3
				case t.IsKeyword("uncommitted"):
					iso = 4
				default:
					return 0, false
				}
			default:
				return 0, false
			}
			m = m&^(7<<txIsoShift) | TxModes(iso)<<txIsoShift
		case t.IsKeyword("read"):
			acc := AccessReadOnly
			switch t = lx.Next(); {
			case t.IsKeyword("only"):
			case t.IsKeyword("write"):
				acc = AccessReadWrite
			default:
				return 0, false
			}
			m = m&^(3<<txAccShift) | TxModes(acc)<<txAccShift
		case t.IsKeyword("deferrable"):
			m = m&^(3<<txDeferShift) | 1<<txDeferShift
		case t.IsKeyword("not") && lx.Next().IsKeyword("deferrable"):
			m = m&^(3<<txDeferShift) | 2<<txDeferShift
		default:
			return 0, false
		}
		t = lx.Next()
	}
}

// Access is the access mode m names.
func (m TxModes) Access() Access { return Access(m >> txAccShift & 3) }

// SQL is a BEGIN statement that opens a transaction with m's modes (those m leaves unsaid
// come from the session's defaults, as they did for the statement m was read from).
func (m TxModes) SQL() string {
	var b strings.Builder
	b.WriteString("BEGIN")
	if iso := m >> txIsoShift & 7; iso != 0 && int(iso) < len(isolations) {
		b.WriteString(" ISOLATION LEVEL " + isolations[iso])
	}
	switch m.Access() {
	case AccessReadOnly:
		b.WriteString(" READ ONLY")
	case AccessReadWrite:
		b.WriteString(" READ WRITE")
	}
	switch m >> txDeferShift & 3 {
	case 1:
		b.WriteString(" DEFERRABLE")
	case 2:
		b.WriteString(" NOT DEFERRABLE")
	}
	return b.String()
}

// BeforeSnapshot reports whether sql holds only statements PostgreSQL runs without taking
// a snapshot, after which a transaction may still change its modes (SET TRANSACTION READ
// WRITE is refused only once a query has run in it): SET, SET LOCAL and RESET of one
// setting (the caller knows which resets it follows with a query of its own), SET
// TRANSACTION (not SNAPSHOT), SET SESSION CHARACTERISTICS, SET CONSTRAINTS, SHOW, and
// SAVEPOINT, RELEASE and ROLLBACK
// TO (a released or rolled-back-to savepoint leaves the transaction as it was; inside
// one, PostgreSQL refuses the switch, a standby too), or nothing at all (an empty query).
// replay is its statements but SHOW, "; "-separated, to run them again elsewhere in the
// same order.
func BeforeSnapshot(sql string) (replay string, ok bool) {
	sts := Scan(sql)
	var b strings.Builder
	for i := range sts {
		st := &sts[i]
		if len(st.SetConfigs) > 0 || st.Do != nil {
			return "", false
		}
		switch st.Kind {
		case KindSetLocal:
			if lx := (Lexer{src: st.Value}); st.Name == "" && lx.Next().IsKeyword("snapshot") {
				return "", false
			}
		case KindSet, KindReset, KindSetCharacteristics:
		case KindOther:
			if equalFoldASCII(FirstKeyword(st.Text), "show") {
				continue
			}
			if !savepointStmt(st.Text) && !constraintsStmt(st.Text) {
				return "", false
			}
		default:
			return "", false
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(st.Text)
	}
	return b.String(), true
}

// savepointStmt reports whether text is SAVEPOINT, RELEASE [SAVEPOINT] or ROLLBACK
// [WORK | TRANSACTION] TO [SAVEPOINT], each of one name.
func savepointStmt(text string) bool {
	lx := Lexer{src: text}
	switch t := lx.Next(); {
	case t.IsKeyword("savepoint"):
	case t.IsKeyword("release"):
		if t = lx.Next(); !t.IsKeyword("savepoint") {
			return oneName(t, &lx)
		}
	case t.IsKeyword("rollback"):
		if t = lx.Next(); t.IsKeyword("work") || t.IsKeyword("transaction") {
			t = lx.Next()
		}
		if !t.IsKeyword("to") {
			return false
		}
		if t = lx.Next(); !t.IsKeyword("savepoint") {
			return oneName(t, &lx)
		}
	default:
		return false
	}
	return oneName(lx.Next(), &lx)
}

// constraintsStmt reports whether text is SET CONSTRAINTS (PostgreSQL's ConstraintsSetStmt,
// which, like SET, runs without a snapshot).
func constraintsStmt(text string) bool {
	lx := Lexer{src: text}
	return lx.Next().IsKeyword("set") && lx.Next().IsKeyword("constraints")
}

// oneName reports whether t is a name and nothing but a semicolon follows it in lx.
func oneName(t Token, lx *Lexer) bool {
	if t.Kind != TokIdent && t.Kind != TokQuotedIdent {
		return false
	}
	t = lx.Next()
	return t.Kind == TokEOF || t.Kind == TokSemicolon
}
