package sqlscan

import "strings"

// PrimaryOnly reports whether sql holds a statement that a standby refuses where the
// primary may take it, in a session whose transactions are read-only
// (default_transaction_read_only on, or inside BEGIN READ ONLY): one that may let what
// runs after it write, or make its transaction serializable ("cannot use serializable
// mode in a hot standby", 0A000). The proxy sends such a request to the primary
// (proxy/replica.go). The statements, also inside DO blocks:
//
//   - BEGIN or START TRANSACTION ... READ WRITE, SET TRANSACTION ... READ WRITE and
//     SET SESSION CHARACTERISTICS AS TRANSACTION ... READ WRITE;
//   - SET [SESSION | LOCAL] of transaction_read_only or default_transaction_read_only to
//     anything but a literal true (off, DEFAULT, FROM CURRENT...), and RESET of them;
//   - RESET ALL and DISCARD ALL;
//   - a set_config call of either setting, or of a name that is not a literal;
//   - a DO block running SQL pgmux cannot read (Block.Dynamic);
//   - BEGIN, START TRANSACTION or SET TRANSACTION ... ISOLATION LEVEL SERIALIZABLE, and
//     SET [LOCAL] or RESET of transaction_isolation, but to a literal other level.
//
// (SET SESSION CHARACTERISTICS and default_transaction_isolation only set what later
// transactions start with, which a standby takes.)
//
// Functions the statements call are not looked into. It errs on the side of a switch:
// a request sent to the primary is answered as PostgreSQL answers it.
func PrimaryOnly(sql string) bool {
	return MaybeInteresting(sql) && switchIn(Scan(sql))
}

// switchIn is PrimaryOnly's verdict on scanned statements.
func switchIn(sts []Statement) bool {
	for st := range All(sts) {
		if switches(st) {
			return true
		}
	}
	return false
}

// switches reports whether one statement (not the ones of its DO block) may switch its
// session or transaction to read-write, or its transaction to serializable.
func switches(st *Statement) bool {
	for _, sc := range st.SetConfigs {
		if sc.Name == "" || readOnlySetting(sc.Name) {
			return true
		}
	}
	if st.Do != nil && st.Do.Dynamic {
		return true
	}
	switch st.Kind {
	case KindBegin:
		return modesReadWrite(st.Text) || modesSerializable(st.Text)
	case KindSetCharacteristics:
		return modesReadWrite(st.Text)
	case KindSetLocal:
		if st.Name == "" {
			return modesReadWrite(st.Value) || modesSerializable(st.Value) // SET TRANSACTION modes
		}
		return readOnlySetting(st.Name) && !literalTrue(st.Value) || isolationSetting(st.Name) && !literalNotSerializable(st.Value)
	case KindSet:
		return readOnlySetting(st.Name) && !literalTrue(st.Value) || isolationSetting(st.Name) && !literalNotSerializable(st.Value)
	case KindReset:
		return readOnlySetting(st.Name) || isolationSetting(st.Name)
	case KindResetAll, KindDiscardAll:
		return true
	}
	return false
}

// modesReadWrite reports whether text (a statement, or its transaction modes) asks for
// READ WRITE.
func modesReadWrite(text string) bool {
	lx := Lexer{src: text}
	return accessIn(&lx, Token{}) == AccessReadWrite
}

// readOnlySetting reports whether name is transaction_read_only or
// default_transaction_read_only (setting names are matched without regard to case).
func readOnlySetting(name string) bool {
	return equalFoldASCII(name, "transaction_read_only") || equalFoldASCII(name, "default_transaction_read_only")
}

// literalTrue reports whether a SET value is one literal that reads as true.
func literalTrue(value string) bool {
	lx := Lexer{src: value}
	t := lx.Next()
	return literalBool(t) == 1 && lx.Next().Kind == TokEOF
}

// modesSerializable reports whether text (a statement, or its transaction modes) asks
// for ISOLATION LEVEL SERIALIZABLE: the only place the word can stand in them.
func modesSerializable(text string) bool {
	lx := Lexer{src: text}
	for t := lx.Next(); t.Kind != TokEOF && t.Kind != TokSemicolon; t = lx.Next() {
		if t.IsKeyword("serializable") {
			return true
		}
	}
	return false
}

// isolationSetting reports whether name is transaction_isolation.
func isolationSetting(name string) bool { return equalFoldASCII(name, "transaction_isolation") }

// literalNotSerializable reports whether a SET value is one literal naming an isolation
// level other than serializable. DEFAULT and the like may mean serializable.
func literalNotSerializable(value string) bool {
	lx := Lexer{src: value}
	t := lx.Next()
	s := t.Text
	switch t.Kind {
	case TokIdent:
	case TokString:
		if len(s) < 2 || s[0] != '\'' {
			return false
		}
		s = stringBody(s)
	default:
		return false
	}
	if lx.Next().Kind != TokEOF {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read committed", "repeatable read", "read uncommitted":
		return true
	}
	return false
}
