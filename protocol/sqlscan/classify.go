package sqlscan

// parser is a two-token window over one statement's text, for the classifiers.
type parser struct {
	lx        Lexer
	text      string
	tok, peek Token
}

// reset points p at the start of text.
func (p *parser) reset(text string) {
	p.lx, p.text = Lexer{src: text}, text
	p.tok = p.lx.Next()
	p.peek = p.lx.Next()
}

func (p *parser) next()               { p.tok, p.peek = p.peek, p.lx.Next() }
func (p *parser) is(kw string) bool   { return p.tok.IsKeyword(kw) }
func (p *parser) isOp(op string) bool { return p.tok.Kind == TokOp && p.tok.Text == op }
func (p *parser) eof() bool           { return p.tok.Kind == TokEOF }

func (p *parser) accept(kw string) bool {
	if p.is(kw) {
		p.next()
		return true
	}
	return false
}

// rest is the text from the current token to the end of the statement.
func (p *parser) rest() string {
	if p.eof() {
		return ""
	}
	return p.text[p.tok.Pos:]
}

// name consumes an identifier and returns the name it denotes.
func (p *parser) name() (string, bool) {
	if p.tok.Kind != TokIdent && p.tok.Kind != TokQuotedIdent {
		return "", false
	}
	n := p.tok.Ident()
	p.next()
	return n, true
}

// qualifiedName consumes name[.name...] and returns the parts joined with ".".
func (p *parser) qualifiedName() (string, bool) {
	n, ok := p.name()
	for ok && p.tok.Kind == TokDot {
		p.next()
		var part string
		if part, ok = p.name(); ok {
			n += "." + part
		}
	}
	return n, ok
}

// lastName consumes name[.name...] and returns the last part.
func (p *parser) lastName() string {
	n, ok := p.name()
	for ok && p.tok.Kind == TokDot {
		p.next()
		var part string
		if part, ok = p.name(); ok {
			n = part
		}
	}
	return n
}

// classify fills in st.Kind and the kind's fields from st.Text, which starts with the
// keyword lead.
func classify(st *Statement, lead Keyword) {
	var pp parser
	pp.reset(st.Text)
	p := &pp
	p.next() // the leading keyword
	switch lead {
	case KwBegin:
		st.Kind = KindBegin
	case KwStart:
		if p.is("transaction") {
			st.Kind = KindBegin
		}
	case KwCommit, KwEnd:
		if !p.is("prepared") {
			st.Kind = KindCommit
		}
	case KwAbort, KwRollback:
		if p.is("prepared") {
			break
		}
		if !p.accept("work") {
			p.accept("transaction")
		}
		if !p.is("to") {
			st.Kind = KindRollback
		}
	case KwSet:
		classifySet(p, st)
	case KwReset:
		classifyReset(p, st)
	case KwPrepare:
		classifyPrepare(p, st)
	case KwExecute:
		st.Kind, st.Name = kindIfName(p, KindExecute)
	case KwDeallocate:
		if p.is("prepare") && p.peek.Kind != TokEOF {
			p.next()
		}
		if p.is("all") {
			st.Kind = KindDeallocateAll
		} else {
			st.Kind, st.Name = kindIfName(p, KindDeallocate)
		}
	case KwDiscard:
		switch {
		case p.is("all"):
			st.Kind = KindDiscardAll
		case p.is("plans"), p.is("sequences"), p.is("temp"), p.is("temporary"):
			st.Kind, st.Name = KindDiscard, p.tok.Ident()
		}
	case KwListen:
		st.Kind, st.Name = kindIfName(p, KindListen)
	case KwUnlisten:
		if p.isOp("*") {
			st.Kind = KindUnlistenAll
		} else {
			st.Kind, st.Name = kindIfName(p, KindUnlisten)
		}
	case KwNotify:
		if st.Kind, st.Name = kindIfName(p, KindNotify); p.tok.Kind == TokComma {
			p.next()
			st.Value = p.rest()
		}
	case KwDeclare:
		classifyDeclare(p, st)
	case KwCreate:
		classifyCreate(p, st)
	case KwLoad:
		if !p.eof() {
			st.Kind, st.Value = KindLoad, p.rest()
		}
	case KwClose:
		if p.is("all") {
			st.Kind, st.Value = KindClose, "ALL"
		} else {
			st.Kind, st.Name = kindIfName(p, KindClose)
		}
	}
}

// kindIfName consumes a name and returns k with it, or KindOther if there is none.
func kindIfName(p *parser, k Kind) (Kind, string) {
	if n, ok := p.name(); ok {
		return k, n
	}
	return KindOther, ""
}

// classifySet handles everything that starts with SET.
func classifySet(p *parser, st *Statement) {
	if p.is("session") && p.peek.IsKeyword("characteristics") {
		st.Kind = KindSetCharacteristics // SET SESSION CHARACTERISTICS AS TRANSACTION ...
		return
	}
	local := false
	if (p.is("local") || (p.is("session") && !p.peek.IsKeyword("authorization"))) &&
		!p.peek.IsKeyword("to") && p.peek.Kind != TokDot && !(p.peek.Kind == TokOp && p.peek.Text == "=") {
		local = p.is("local")
		p.next()
	}
	kind := KindSet
	if local {
		kind = KindSetLocal
	}
	zone := false // SET TIME ZONE, where LOCAL means DEFAULT
	switch {
	case p.is("transaction"):
		p.next()
		st.Kind, st.Value = KindSetLocal, p.rest()
		return
	case p.is("constraints"):
		return // SET CONSTRAINTS: transaction-scoped, KindOther
	case p.is("session") && p.peek.IsKeyword("authorization"):
		p.next()
		p.next()
		st.Name = "session_authorization"
	case p.is("time") && p.peek.IsKeyword("zone"):
		p.next()
		p.next()
		st.Name = "timezone"
		zone = true
	case p.is("names"):
		p.next()
		st.Name = "client_encoding"
	case p.is("schema") && p.peek.Kind == TokString:
		p.next()
		st.Name = "search_path"
	case p.is("xml") && p.peek.IsKeyword("option"):
		p.next()
		p.next()
		st.Name = "xmloption"
	case p.is("role") && !p.peek.IsKeyword("to") && !(p.peek.Kind == TokOp && p.peek.Text == "="):
		p.next()
		st.Name = "role"
	default:
		name, ok := p.qualifiedName()
		switch {
		case !ok:
			return
		case p.accept("to"), p.isOp("="):
			if p.isOp("=") {
				p.next()
			}
		case !(p.is("from") && p.peek.IsKeyword("current")):
			return
		}
		st.Name = name
	}
	if !local && (st.Name == "role" || st.Name == "session_authorization") {
		kind = KindSetRole
	}
	st.Kind, st.Value = kind, p.rest()
	if equalFoldASCII(st.Value, "default") || (st.Value == "" && st.Name == "client_encoding") ||
		(zone && equalFoldASCII(st.Value, "local")) {
		st.Value = "DEFAULT"
	}
}

// classifyReset handles RESET.
func classifyReset(p *parser, st *Statement) {
	switch {
	case p.is("all"):
		st.Kind = KindResetAll
		return
	case p.is("time") && p.peek.IsKeyword("zone"):
		st.Name = "timezone"
	case p.is("session") && p.peek.IsKeyword("authorization"):
		st.Name = "session_authorization"
	case p.is("transaction") && p.peek.IsKeyword("isolation"):
		st.Name = "transaction_isolation"
	default:
		name, ok := p.qualifiedName()
		if !ok {
			return
		}
		st.Name = name
	}
	st.Kind = KindReset
}

// classifyPrepare handles PREPARE name [(type, ...)] AS statement; PREPARE TRANSACTION
// 'gid' is two-phase commit and stays KindOther.
func classifyPrepare(p *parser, st *Statement) {
	if p.is("transaction") && p.peek.Kind == TokString {
		return
	}
	name, ok := p.name()
	if !ok {
		return
	}
	var types []string
	if p.tok.Kind == TokLParen {
		start, depth := p.tok.End(), 1
		for p.next(); !p.eof(); p.next() {
			switch p.tok.Kind {
			case TokLParen:
				depth++
			case TokRParen:
				depth--
			}
			if depth == 0 || (depth == 1 && p.tok.Kind == TokComma) {
				types = append(types, trimSpace(p.text[start:p.tok.Pos]))
				start = p.tok.End()
			}
			if depth == 0 {
				p.next()
				break
			}
		}
		if len(types) == 1 && types[0] == "" {
			types = nil // PREPARE p() AS ...
		}
	}
	if !p.accept("as") {
		return
	}
	st.Kind, st.Name, st.ParamTypes, st.PrepareBody = KindPrepare, name, types, p.rest()
}

// classifyDeclare handles DECLARE name [options] CURSOR [{WITH|WITHOUT} HOLD] FOR query;
// only WITH HOLD cursors outlive the transaction, so only they get a kind.
func classifyDeclare(p *parser, st *Statement) {
	name, ok := p.name()
	if !ok {
		return
	}
	for p.is("binary") || p.is("insensitive") || p.is("asensitive") || p.is("no") || p.is("scroll") {
		p.next()
	}
	if p.accept("cursor") && p.is("with") && p.peek.IsKeyword("hold") {
		st.Kind, st.Name = KindDeclareHold, name
	}
}

// classifyCreate spots temporary objects: CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY
// [RECURSIVE] TABLE|VIEW|SEQUENCE, and any CREATE whose object lives in pg_temp.
func classifyCreate(p *parser, st *Statement) {
	if p.accept("or") {
		p.accept("replace")
	}
	if p.is("global") || p.is("local") {
		p.next()
	}
	if p.accept("temp") || p.accept("temporary") {
		p.accept("recursive")
		if !(p.accept("table") || p.accept("view") || p.accept("sequence")) {
			return
		}
		if p.is("if") && p.peek.IsKeyword("not") {
			p.next()
			p.next()
			p.accept("exists")
		}
		st.Kind, st.Name = KindCreateTemp, p.lastName()
		return
	}
	// The object's name comes within a few tokens and before any '(' or AS.
	for i := 0; i < 12 && !p.eof() && p.tok.Kind != TokLParen && !p.is("as"); i++ {
		if isPgTemp(p.tok) && p.peek.Kind == TokDot {
			p.next()
			p.next()
			st.Kind = KindCreateTemp
			st.Name, _ = p.name()
			return
		}
		p.next()
	}
}

// trimSpace trims the whitespace the server's scanner knows, nothing more.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
