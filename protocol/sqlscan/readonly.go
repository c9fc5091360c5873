package sqlscan

// Read-only proofs for routing reads to standbys (proxy/replica.go). They err on the
// side of "not proven": a statement that is not shown read-only goes to the primary,
// which is always right.

// ReadOnly reports whether sql holds only statements the lexer proves read-only (at
// least one): a SELECT, TABLE, VALUES or WITH … SELECT without a locking clause (FOR
// UPDATE/SHARE/…), without INTO, without a data-modifying CTE, and calling no function
// outside a small allowlist of functions that neither write nor have effects outside the
// statement; or a SHOW. Anything else is not proven. User-defined operators and views are
// not looked into: a view or operator that writes is caught by the standby's 25006 error,
// which sends the request to the primary.
func ReadOnly(sql string) bool {
	lx := Lexer{src: sql}
	n := 0
	for {
		first := lx.Next()
		switch first.Kind {
		case TokEOF:
			return n > 0
		case TokSemicolon:
			continue
		}
		if !readOnlyStatement(&lx, first) {
			return false
		}
		n++
	}
}

// readOnlyStatement checks one statement from its first token through its semicolon
// or the end of the input.
func readOnlyStatement(lx *Lexer, first Token) bool {
	switch {
	case first.IsKeyword("show"):
		for {
			switch lx.Next().Kind {
			case TokEOF, TokSemicolon:
				return true
			}
		}
	case first.IsKeyword("select"), first.IsKeyword("table"), first.IsKeyword("values"), first.IsKeyword("with"):
	default:
		return false
	}
	prev := first
	for {
		t := lx.Next()
		switch t.Kind {
		case TokEOF, TokSemicolon:
			return true
		case TokIdent:
			if writingKeyword(t) {
				return false
			}
		case TokLParen:
			if !allowedParen(prev, lx) {
				return false
			}
		}
		prev = t
	}
}

// writingKeyword reports keywords that make a SELECT-led statement write or lock: locking
// clauses (FOR UPDATE, FOR SHARE, …; FOR also appears in SUBSTRING(x FOR n), which is
// then not proven), SELECT INTO, data-modifying CTEs, and LOCK.
func writingKeyword(t Token) bool {
	switch lowerASCII(t.Text) {
	case "for", "into", "insert", "update", "delete", "merge", "lock", "copy", "call", "do", "execute", "notify", "listen":
		return true
	}
	return false
}

// allowedParen reports whether the parenthesis after prev opens something harmless: a
// subquery or list after a keyword, a type modifier, or a call of an allowlisted
// function (unqualified or pg_catalog-qualified).
func allowedParen(prev Token, lx *Lexer) bool {
	switch prev.Kind {
	case TokIdent:
	case TokQuotedIdent:
		return false // a quoted name called: a user function
	default:
		return true // (, ,, operators, numbers: grouping or a row
	}
	name := lowerASCII(prev.Text)
	if parenKeywords[name] || allowedFuncs[name] {
		return !qualifiedOther(lx, prev)
	}
	return false
}

// qualifiedOther reports whether the name at t is schema-qualified by another schema than
// pg_catalog (a user schema's function of an allowlisted name is not proven harmless).
func qualifiedOther(lx *Lexer, t Token) bool {
	src := lx.src[:t.Pos]
	i := len(src)
	for i > 0 && isSpace(src[i-1]) {
		i--
	}
	if i == 0 || src[i-1] != '.' {
		return false
	}
	j := i - 1
	for j > 0 && isSpace(src[j-1]) {
		j--
	}
	k := j
	for k > 0 && isIdentCont(src[k-1]) {
		k--
	}
	return !equalFoldASCII(src[k:j], "pg_catalog")
}

// parenKeywords are keywords a parenthesis may follow without a function call: subqueries,
// lists, type modifiers and SQL's function-like syntax with fixed meaning.
var parenKeywords = setOf(
	"select", "from", "join", "on", "using", "where", "and", "or", "not", "in", "exists", "any",
	"all", "some", "values", "as", "when", "then", "else", "case", "over", "filter", "by",
	"lateral", "array", "row", "cast", "is", "between", "like", "ilike", "having", "union",
	"intersect", "except", "with", "recursive", "partition", "within", "group", "order",
	"limit", "offset", "fetch", "distinct", "table", "materialized", "window", "rows", "range",
	"groups", "tablesample", "only", "extract", "position", "trim", "overlay", "treat",
	// type modifiers
	"numeric", "decimal", "varchar", "char", "character", "varying", "bit", "timestamp", "time",
	"interval", "float", "nchar",
)

// allowedFuncs are functions without side effects that a read-only proof may call:
// aggregates, arithmetic, text, date/time, JSON and array functions of the standard
// catalogue, and a few information functions.
var allowedFuncs = setOf(
	"count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "array_agg", "string_agg",
	"json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "stddev", "variance",
	"abs", "round", "floor", "ceil", "ceiling", "trunc", "mod", "power", "sqrt", "exp", "ln", "log",
	"sign", "width_bucket",
	"coalesce", "nullif", "greatest", "least",
	"lower", "upper", "length", "char_length", "octet_length", "substr", "substring", "concat",
	"concat_ws", "replace", "left", "right", "lpad", "rpad", "ltrim", "rtrim", "btrim", "split_part",
	"strpos", "starts_with", "initcap", "reverse", "repeat", "translate", "format", "md5",
	"regexp_replace", "regexp_match", "regexp_matches", "quote_ident", "quote_literal",
	"to_char", "to_number", "to_date", "to_timestamp", "date_trunc", "date_part", "age", "now",
	"make_date", "make_interval", "justify_interval", "timezone", "date_bin",
	"row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value", "ntile",
	"json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array", "to_json",
	"to_jsonb", "row_to_json", "json_extract_path_text", "jsonb_extract_path_text", "jsonb_array_length",
	"json_array_length", "jsonb_typeof", "jsonb_set", "jsonb_strip_nulls", "jsonb_path_query",
	"array_length", "array_to_string", "string_to_array", "array_position", "cardinality", "unnest",
	"generate_series", "array_remove", "array_append", "array_cat",
	"inet_server_port", "inet_server_addr", "pg_is_in_recovery", "version", "pg_backend_pid",
	"current_setting", "current_database", "current_schema", "pg_last_wal_replay_lsn",
	"pg_last_xact_replay_timestamp", "pg_typeof", "pg_column_size", "pg_relation_size",
	"pg_total_relation_size", "pg_size_pretty",
)

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// Access is what a statement says of its transaction's access mode.
type Access uint8

const (
	AccessUnsaid    Access = iota // no READ ONLY or READ WRITE
	AccessReadOnly                // READ ONLY
	AccessReadWrite               // READ WRITE
)

// BeginAccess reports whether sql starts with BEGIN or START TRANSACTION and, if so, the
// access mode its first statement asks for.
func BeginAccess(sql string) (begin bool, access Access) {
	lx := Lexer{src: sql}
	t := lx.Next()
	switch {
	case t.IsKeyword("begin"):
	case t.IsKeyword("start") && lx.Next().IsKeyword("transaction"):
	default:
		return false, AccessUnsaid
	}
	return true, accessIn(&lx, t)
}

// accessIn reads transaction modes from the token after prev through the statement's end
// (its semicolon or the end of the input) and returns the last access mode they name.
func accessIn(lx *Lexer, prev Token) (access Access) {
	for {
		t := lx.Next()
		switch {
		case t.Kind == TokEOF, t.Kind == TokSemicolon:
			return access
		case prev.IsKeyword("read") && t.IsKeyword("only"):
			access = AccessReadOnly
		case prev.IsKeyword("read") && t.IsKeyword("write"):
			access = AccessReadWrite
		}
		prev = t
	}
}
