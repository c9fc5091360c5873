package sqlscan

// ExclusiveDatabase returns the database that sql, when it is one of the statements
// PostgreSQL refuses while other sessions are connected to a database (55006 "database
// … is being accessed by other users"), needs to itself:
//
//	DROP DATABASE [IF EXISTS] name …
//	ALTER DATABASE name RENAME TO … | SET TABLESPACE …
//	CREATE DATABASE new … TEMPLATE [=] name …
//
// A pooler's idle server connections to that database are such sessions (test runners
// drop and clone their test databases through the app's URL: Django, Rails). Only the
// first statement of sql counts: these cannot run in a multi-statement Query anyway.
func ExclusiveDatabase(sql string) (string, bool) {
	var p parser
	p.reset(sql)
	switch {
	case p.accept("drop"):
		if !p.accept("database") {
			return "", false
		}
		if p.is("if") && p.peek.IsKeyword("exists") {
			p.next()
			p.next()
		}
		return p.name()
	case p.accept("alter"):
		if !p.accept("database") {
			return "", false
		}
		n, ok := p.name()
		if ok && (p.is("rename") || (p.is("set") && p.peek.IsKeyword("tablespace"))) {
			return n, true
		}
	case p.accept("create"):
		if !p.accept("database") {
			return "", false
		}
		if _, ok := p.name(); !ok {
			return "", false
		}
		for !p.eof() && p.tok.Kind != TokSemicolon {
			if p.accept("template") {
				if p.isOp("=") {
					p.next()
				}
				if p.is("default") {
					return "", false
				}
				return p.name()
			}
			p.next()
		}
	}
	return "", false
}
