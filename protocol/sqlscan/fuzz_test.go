package sqlscan

import (
	"strings"
	"testing"
)

// FuzzScan checks that Scan and the Lexer never panic, that every Text is a slice of the
// input in order, that tokens tile the input, and that MaybeInteresting never returns false
// for text Scan finds interesting. Seeds live in testdata/fuzz/FuzzScan.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"select 1",
		"begin; select pg_advisory_lock(1); commit",
		"SET search_path TO \"My Schema\", public",
		"select $$ ; listen x $$",
		"/* a /* b */ c */ listen y",
		"create function f() returns int language sql begin atomic select 1; end; listen x",
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
			if st.Kind != KindOther || st.AdvisoryLock > 0 || st.AdvisoryUnlock > 0 || st.AdvisoryUnlockAll {
				interesting = true
			}
			_ = st.Kind.String()
		}
		if interesting && !MaybeInteresting(sql) {
			t.Fatalf("MaybeInteresting(%q) = false but Scan found an interesting statement", sql)
		}
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
