package sqlscan

import "strings"

// plWalker reads a PL/pgSQL body one ';'-separated piece at a time, strips the block
// structure in front of each statement and classifies what is left like top-level SQL
// (see Block). PL/pgSQL uses the core SQL scanner, so the Lexer reads it as it is.
type plWalker struct {
	src  string
	nest int // nesting level of the statements found here
	b    *Block

	depth   int  // open BEGIN blocks
	begun   bool // the outermost BEGIN was seen
	declare bool // inside a DECLARE section: pieces are declarations until BEGIN
	flow    bool // control flow seen: the statements may not all run, or not once
	listens int  // exact LISTEN/UNLISTEN statements
	plain   bool // so far only BEGIN, END and exact LISTEN/UNLISTEN statements
}

func (w *plWalker) run() {
	lx := Lexer{src: w.src}
	for t := lx.Next(); t.Kind != TokEOF; t = lx.Next() {
		w.piece(&lx, t)
	}
	straight := !w.flow
	for i := range w.b.Statements {
		if d := w.b.Statements[i].Do; d != nil {
			straight = straight && d.Straight
			w.b.Dynamic = w.b.Dynamic || d.Dynamic
		}
	}
	w.b.Straight = straight
	w.b.ListenOnly = w.plain && w.begun && w.depth == 0 && w.listens > 0
}

// piece consumes one piece, starting at t, through its ';' (or the end of the body).
func (w *plWalker) piece(lx *Lexer, t Token) {
	if w.begun && w.depth <= 0 {
		w.plain = false // text after the outermost END: the server rejects it
	}
	for {
		switch {
		case t.Kind == TokSemicolon, t.Kind == TokEOF:
			w.plain = false // an empty statement, or structure with no statement after it
			return
		case w.declare && !t.IsKeyword("begin"):
			skipPiece(lx, t) // a declaration; calls in its initializer were counted with the body
			return
		case t.Kind == TokOp && t.Text == "<<": // <<label>>
			w.plain = false
			if t = lx.Next(); t.Kind == TokIdent || t.Kind == TokQuotedIdent {
				t = lx.Next()
			}
			if t.Kind == TokOp && t.Text == ">>" {
				t = lx.Next()
			}
			continue
		case t.IsKeyword("declare"):
			w.declare, w.plain = true, false // what follows is declarations up to BEGIN
		case t.IsKeyword("begin"):
			w.declare, w.begun = false, true
			w.depth++
		case t.IsKeyword("end"):
			w.end(lx)
			return
		case t.IsKeyword("if"), t.IsKeyword("elsif"), t.IsKeyword("elseif"), t.IsKeyword("when"), t.IsKeyword("case"):
			w.flow, w.plain = true, false
			t = w.skipHeader(lx, "then")
			continue
		case t.IsKeyword("else"), t.IsKeyword("exception"), t.IsKeyword("loop"):
			w.flow, w.plain = true, false
		case t.IsKeyword("while"), t.IsKeyword("for"), t.IsKeyword("foreach"):
			w.flow, w.plain = true, false
			t = w.skipHeader(lx, "loop")
			continue
		case t.IsKeyword("execute"):
			w.plain = false
			w.execute(lx, false)
			return
		case t.IsKeyword("return"), t.IsKeyword("open"):
			// RETURN [QUERY [EXECUTE ...]], OPEN cursor FOR {query | EXECUTE ...}: only a
			// query run by EXECUTE is SQL worth reading; anything else is an expression.
			w.flow = w.flow || t.IsKeyword("return")
			w.plain = false
			w.runsExecute(lx)
			return
		case t.IsKeyword("perform"):
			w.plain = false
			w.statement(lx, lx.Next(), true)
			return
		default:
			w.statement(lx, t, false)
			return
		}
		t = lx.Next()
	}
}

// end handles a piece that starts with END: END [label] closes a block; END IF, END LOOP
// and END CASE close control structures, which opened no block.
func (w *plWalker) end(lx *Lexer) {
	t := lx.Next()
	if !(t.IsKeyword("if") || t.IsKeyword("loop") || t.IsKeyword("case")) {
		w.depth--
	}
	if t.Kind != TokSemicolon && t.Kind != TokEOF {
		w.plain = false
		skipPiece(lx, t)
	}
}

// statement classifies the SQL statement that starts at t. A PERFORM's query, and any
// statement whose second token assigns (x := ..., arr[1] = ..., rec.f := ...), only
// counts advisory calls: neither can be a statement of another kind.
func (w *plWalker) statement(lx *Lexer, t Token, perform bool) {
	sp := splitter{nest: w.nest}
	for ; t.Kind != TokEOF && !(t.Kind == TokSemicolon && sp.atomic == 0); t = lx.Next() {
		sp.feed(t)
		switch {
		case sp.n == 1 && (perform || sp.lead == KwSelect || sp.lead == KwWith):
			// PL/pgSQL's SELECT ... INTO fills variables: it never creates a table.
			sp.lead = KwNone
		case sp.n == 2 && (t.Kind == TokDot || (t.Kind == TokOp && (t.Text == ":=" || t.Text == "=" || t.Text == "["))):
			sp.lead = KwNone
		}
	}
	if sp.n == 0 {
		w.plain = false
		return
	}
	if sp.first.IsKeyword("raise") || sp.first.IsKeyword("assert") || sp.first.IsKeyword("exit") ||
		sp.first.IsKeyword("continue") {
		w.flow = true
	}
	st := sp.finish(w.src)
	w.b.Statements = append(w.b.Statements, st)
	switch {
	case w.depth <= 0, st.Kind != KindListen && st.Kind != KindUnlisten && st.Kind != KindUnlistenAll,
		sp.n != 2, st.Kind != KindUnlistenAll && !channelName(sp.last):
		w.plain = false
	default:
		w.listens++
	}
}

// channelName reports whether t is a channel name the server takes as written: an
// identifier that is not a reserved keyword (those are syntax errors after LISTEN),
// short enough not to be truncated with a NOTICE.
func channelName(t Token) bool {
	switch {
	case t.Kind == TokIdent:
		return len(t.Text) <= maxIdentLen && !reservedKeyword(lowerASCII(t.Text))
	case t.Kind == TokQuotedIdent && t.Text[0] == '"':
		return len(unquote(t.Text, '"')) <= maxIdentLen
	}
	return false
}

// execute reads the rest of an EXECUTE command: a string literal, or literals joined
// with ||, is scanned as SQL at the next nesting level; anything else is dynamic. In a
// FOR header (inHeader) the command may be followed by USING or LOOP, in a statement
// by INTO or USING. It consumes the rest of the piece unless inHeader, when it returns
// the token after the command.
func (w *plWalker) execute(lx *Lexer, inHeader bool) Token {
	var sql strings.Builder
	n := 0
	t := lx.Next()
	for t.Kind == TokString {
		v, next, ok := literal(lx, t)
		if t = next; !ok {
			n = 0
			break
		}
		sql.WriteString(v)
		n++
		if !(t.Kind == TokOp && t.Text == "||") {
			break
		}
		t = lx.Next()
	}
	end := t.Kind == TokSemicolon || t.Kind == TokEOF || t.IsKeyword("using") ||
		(inHeader && t.IsKeyword("loop")) || (!inHeader && t.IsKeyword("into"))
	if n > 0 && end {
		w.nested(sql.String())
	} else {
		w.b.Dynamic = true
	}
	if !inHeader {
		skipPiece(lx, t)
	}
	return t
}

// nested scans SQL text an EXECUTE runs as statements of this block.
func (w *plWalker) nested(sql string) {
	w.b.Statements = append(w.b.Statements, scan(sql, w.nest)...)
}

// runsExecute skips the rest of a RETURN or OPEN piece, reading the command of an
// EXECUTE that follows QUERY or FOR in it.
func (w *plWalker) runsExecute(lx *Lexer) {
	var prev Token
	for t := lx.Next(); t.Kind != TokSemicolon && t.Kind != TokEOF; t = lx.Next() {
		if t.IsKeyword("execute") && (prev.IsKeyword("query") || prev.IsKeyword("for")) {
			w.execute(lx, false)
			return
		}
		prev = t
	}
}

// skipHeader skips an IF/ELSIF/WHEN/CASE condition up to THEN, or a WHILE/FOR/FOREACH
// header up to LOOP, and returns the token after it (';' or EOF if the piece ends
// first). CASE ... END inside the condition and parentheses are stepped over; in a FOR
// header, IN EXECUTE's command is read.
func (w *plWalker) skipHeader(lx *Lexer, until string) Token {
	parens, cases := 0, 0
	var prev Token
	for t := lx.Next(); ; t = lx.Next() {
		switch {
		case t.Kind == TokSemicolon, t.Kind == TokEOF:
			return t
		case t.Kind == TokLParen:
			parens++
		case t.Kind == TokRParen:
			parens--
		case parens > 0:
		case t.IsKeyword("case"):
			cases++
		case t.IsKeyword("end") && cases > 0:
			cases--
		case cases == 0 && t.IsKeyword(until):
			return lx.Next()
		case until == "loop" && t.IsKeyword("execute") && prev.IsKeyword("in"):
			switch t = w.execute(lx, true); {
			case t.IsKeyword("loop"):
				return lx.Next()
			case t.Kind == TokSemicolon, t.Kind == TokEOF:
				return t
			}
		}
		prev = t
	}
}

// skipPiece consumes tokens through the ';' ending the piece that t belongs to.
func skipPiece(lx *Lexer, t Token) {
	for t.Kind != TokSemicolon && t.Kind != TokEOF {
		t = lx.Next()
	}
}

// reservedKeyword reports whether the lowercase word s is one of PostgreSQL 15's
// reserved or type/function-name keywords (pg_get_keywords() catcode R and T): not a
// ColId, so not a channel name.
func reservedKeyword(s string) bool {
	switch s {
	case "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
		"authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
		"column", "concurrently", "constraint", "create", "cross", "current_catalog",
		"current_date", "current_role", "current_schema", "current_time", "current_timestamp",
		"current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except",
		"false", "fetch", "for", "foreign", "freeze", "from", "full", "grant", "group", "having",
		"ilike", "in", "initially", "inner", "intersect", "into", "is", "isnull", "join", "lateral",
		"leading", "left", "like", "limit", "localtime", "localtimestamp", "natural", "not",
		"notnull", "null", "offset", "on", "only", "or", "order", "outer", "overlaps", "placing",
		"primary", "references", "returning", "right", "select", "session_user", "similar", "some",
		"symmetric", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique",
		"user", "using", "variadic", "verbose", "when", "where", "window", "with":
		return true
	}
	return false
}
