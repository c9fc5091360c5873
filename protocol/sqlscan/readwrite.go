package sqlscan

// ReadWriteSwitch reports whether sql holds a statement that may let what runs after it
// write in a session whose transactions are read-only (default_transaction_read_only on,
// or inside BEGIN READ ONLY): the proxy sends such a request to the primary, where a
// standby would refuse the switch or the write (proxy/replica.go). The statements, also
// inside DO blocks:
//
//   - BEGIN or START TRANSACTION ... READ WRITE, SET TRANSACTION ... READ WRITE and
//     SET SESSION CHARACTERISTICS AS TRANSACTION ... READ WRITE;
//   - SET [SESSION | LOCAL] of transaction_read_only or default_transaction_read_only to
//     anything but a literal true (off, DEFAULT, FROM CURRENT...), and RESET of them;
//   - RESET ALL and DISCARD ALL;
//   - a set_config call of either setting, or of a name that is not a literal;
//   - a DO block running SQL pgmux cannot read (Block.Dynamic).
//
// Functions the statements call are not looked into. It errs on the side of a switch:
// a request sent to the primary is answered as PostgreSQL answers it.
func ReadWriteSwitch(sql string) bool {
	return MaybeInteresting(sql) && switchIn(Scan(sql))
}

// switchIn is ReadWriteSwitch's verdict on scanned statements.
func switchIn(sts []Statement) bool {
	for st := range All(sts) {
		if switches(st) {
			return true
		}
	}
	return false
}

// switches reports whether one statement (not the ones of its DO block) may switch its
// session or transaction to read-write.
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
	case KindBegin, KindSetCharacteristics:
		return modesReadWrite(st.Text)
	case KindSetLocal:
		if st.Name == "" {
			return modesReadWrite(st.Value) // SET TRANSACTION modes
		}
		return readOnlySetting(st.Name) && !literalTrue(st.Value)
	case KindSet:
		return readOnlySetting(st.Name) && !literalTrue(st.Value)
	case KindReset:
		return readOnlySetting(st.Name)
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
