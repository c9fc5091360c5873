package sqlscan

import "unsafe"

// SplitAfterEnd splits the text of a simple Query sent inside a transaction after the
// statement that ends the transaction: COMMIT, END, ROLLBACK or ABORT, but not AND CHAIN
// (whose new transaction goes on). head is the text through that statement and its
// semicolon, rest what follows, with at least one statement in it. ok is false when no
// statement ends the transaction, when none follows, or when rest is one statement that
// PostgreSQL runs differently alone than after others in one Query (OwnTransaction).
func SplitAfterEnd(sql string) (head, rest string, ok bool) {
	if !MayHoldMore(sql) {
		return "", "", false
	}
	sts := Scan(sql)
	for i := range sts {
		st := &sts[i]
		if st.Kind != KindCommit && st.Kind != KindRollback || Chained(st.Text) {
			continue
		}
		if i == len(sts)-1 || i == len(sts)-2 && OwnTransaction(sts[i+1].Text) {
			return "", "", false
		}
		end := int(uintptr(unsafe.Pointer(unsafe.StringData(st.Text)))-uintptr(unsafe.Pointer(unsafe.StringData(sql)))) + len(st.Text)
		lx := Lexer{src: sql, pos: end}
		if t := lx.Next(); t.Kind == TokSemicolon {
			return sql[:t.End()], sql[t.End():], true
		}
		return "", "", false
	}
	return "", "", false
}

// Chained reports whether a COMMIT or ROLLBACK statement ends with AND CHAIN.
func Chained(text string) bool {
	lx := Lexer{src: text}
	var prev, last Token
	for t := lx.Next(); t.Kind != TokEOF; t = lx.Next() {
		prev, last = last, t
	}
	return prev.IsKeyword("and") && last.IsKeyword("chain")
}

// OwnTransaction reports whether a statement may be one PostgreSQL refuses, or runs
// otherwise, inside a transaction block, which a Query of several statements is: VACUUM,
// CLUSTER, REINDEX, CALL and DO (transaction control), DISCARD, and CREATE, DROP or
// ALTER of a database, tablespace or subscription, ALTER SYSTEM, or CONCURRENTLY. It errs
// on the side of yes.
func OwnTransaction(text string) bool {
	switch KeywordOf(FirstKeyword(text)) {
	case KwDo, KwDiscard:
		return true
	case KwCreate, KwDrop, KwAlter:
		lx := Lexer{src: text}
		lx.Next()
		for i := 0; i < 6; i++ {
			t := lx.Next()
			switch {
			case t.Kind == TokEOF:
				return false
			case t.IsKeyword("database"), t.IsKeyword("tablespace"), t.IsKeyword("subscription"),
				t.IsKeyword("concurrently"), t.IsKeyword("system"):
				return true
			}
		}
		return false
	}
	lx := Lexer{src: text}
	t := lx.Next()
	return t.IsKeyword("vacuum") || t.IsKeyword("cluster") || t.IsKeyword("reindex") || t.IsKeyword("call")
}

// TxExit reports whether text, one statement that parses, is one PostgreSQL runs in a
// failed transaction (IsTransactionExitStmt): COMMIT, END, ROLLBACK, ABORT, each with AND
// [NO] CHAIN or not, ROLLBACK TO SAVEPOINT and PREPARE TRANSACTION; not COMMIT PREPARED,
// ROLLBACK PREPARED or PREPARE of a statement (one may be named "transaction").
func TxExit(text string) bool {
	lx := Lexer{src: text}
	t := lx.Next()
	for t.Kind == TokSemicolon { // empty statements in front are dropped by the parser
		t = lx.Next()
	}
	switch KeywordOf(t.Text) {
	case KwEnd, KwAbort:
		return t.Kind == TokIdent
	case KwCommit, KwRollback:
		return t.Kind == TokIdent && !lx.Next().IsKeyword("prepared")
	case KwPrepare:
		return t.Kind == TokIdent && lx.Next().IsKeyword("transaction") && lx.Next().Kind == TokString
	}
	return false
}
