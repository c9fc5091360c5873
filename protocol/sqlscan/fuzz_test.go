package sqlscan

import (
	"strings"
	"testing"
)

// FuzzScan checks that Scan and the Lexer never panic, that every Text is a slice of the
// input in order, that tokens tile the input, and that MaybeInteresting never returns false
// for text Scan finds interesting, in DO blocks too, nor for text whose statements switch
// to read-write or serializable (PrimaryOnly), and that SplitAfterEnd cuts the text in two after a
// semicolon. Seeds live in testdata/fuzz/FuzzScan.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"select 1",
		"begin; select pg_advisory_lock(1); commit",
		"SET search_path TO \"My Schema\", public",
		"select $$ ; listen x $$",
		"select pg_catalog.set_config('myapp.tenant', $1, false)",
		"/* a /* b */ c */ listen y",
		"create function f() returns int language sql begin atomic select 1; end; listen x",
		`DO $$BEGIN LISTEN "ch"; END$$`,
		"select 1; do 'begin execute ''listen x''; end'; select 2",
		"select 1; begin read write; insert into t values (1); commit",
		"set default_transaction_read_only = off; commit; insert into t values (1)",
		"do $$begin perform set_config('transaction_read_only', 'off', true); end$$",
		"select 1; commit /* ; */ ; insert into t values (1)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		interesting := false
		from := 0
		for _, st := range Scan(sql) {
			i := strings.Index(sql[from:], st.Text)
			if st.Text == "" || i < 0 {
				t.Fatalf("Text %q is not a non-empty substring of %q after offset %d", st.Text, sql, from)
			}
			from += i + len(st.Text)
			if st.Kind != KindOther || st.AdvisoryLock > 0 || st.AdvisoryUnlock > 0 || st.AdvisoryUnlockAll || len(st.SetConfigs) > 0 {
				interesting = true
			}
			_ = st.Kind.String()
		}
		// Statements inside DO blocks count too: the text has a DO, so MaybeInteresting
		// must not miss it.
		for st := range All(Scan(sql)) {
			if st.Kind != KindOther || st.AdvisoryLock > 0 || st.AdvisoryUnlock > 0 || st.AdvisoryUnlockAll {
				interesting = true
			}
			if b := st.Do; b != nil && b.ListenOnly && (b.Dynamic || !b.Straight) {
				t.Fatalf("ListenOnly block of %q is dynamic or not straight: %+v", sql, b)
			}
		}
		if interesting && !MaybeInteresting(sql) {
			t.Fatalf("MaybeInteresting(%q) = false but Scan found an interesting statement", sql)
		}
		// PrimaryOnly skips Scan when MaybeInteresting is false: it must miss nothing.
		if switchIn(Scan(sql)) && !PrimaryOnly(sql) {
			t.Fatalf("PrimaryOnly(%q) = false but its statements need the primary", sql)
		}
		if head, rest, ok := SplitAfterEnd(sql); ok && (head+rest != sql || !strings.HasSuffix(head, ";") || len(Scan(rest)) == 0) {
			t.Fatalf("SplitAfterEnd(%q) = %q, %q", sql, head, rest)
		}
		checkDoBody(t, sql)
		lx := NewLexer(sql)
		end := 0
		for tok := lx.Next(); tok.Kind != TokEOF; tok = lx.Next() {
			if tok.Pos < end || tok.Text == "" || sql[tok.Pos:tok.End()] != tok.Text {
				t.Fatalf("bad token %+v after offset %d in %q", tok, end, sql)
			}
			end = tok.End()
			_ = tok.Ident()
		}
		_ = FirstKeyword(sql)
	})
}

// checkDoBody runs body through the PL/pgSQL walker as a dollar-quoted and as a
// single-quoted DO block: both must decode to body and find the same statements.
func checkDoBody(t *testing.T, body string) {
	if strings.Contains(body+"$", "$fz$") { // the body would end the dollar quote
		return
	}
	dollar := Scan("DO $fz$" + body + "$fz$")
	quoted := Scan("DO '" + strings.ReplaceAll(body, "'", "''") + "'")
	if len(dollar) != 1 || len(quoted) != 1 || dollar[0].Do == nil || quoted[0].Do == nil {
		t.Fatalf("DO blocks of %q: %+v / %+v", body, dollar, quoted)
	}
	d, q := dollar[0].Do, quoted[0].Do
	if d.Body != body || q.Body != body {
		t.Fatalf("bodies %q and %q, want %q", d.Body, q.Body, body)
	}
	if d.ListenOnly != q.ListenOnly || d.Straight != q.Straight || d.Dynamic != q.Dynamic ||
		len(d.Statements) != len(q.Statements) {
		t.Fatalf("the two DO blocks of %q differ: %+v / %+v", body, d, q)
	}
	for i := range d.Statements {
		if a, b := d.Statements[i], q.Statements[i]; a.Kind != b.Kind || a.Name != b.Name || a.Text != b.Text {
			t.Fatalf("statement %d of %q: %+v / %+v", i, body, a, b)
		}
	}
}
