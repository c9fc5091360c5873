package sqlscan

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The per-message fast path as it was before LeadOf: a byte loop for hasTrigger,
// FirstKeyword through Lexer.Next, keywords compared as lower-cased strings. LeadOf must
// give the same answers on every input (checkLead).

func hasTriggerRef(sql string) bool {
	next := [256]byte{';': ';', 'a': 'd', 'A': 'd', 't': 'e', 'T': 'e', 's': 'e', 'S': 'e'}
	for i := 0; i < len(sql); i++ {
		want := next[sql[i]]
		switch {
		case want == 0:
			continue
		case want == ';':
			if !onlySpaceAfter(sql, i+1) {
				return true
			}
		case i+1 >= len(sql) || sql[i+1]|0x20 != want:
			continue
		case want == 'd':
			if hasPrefixFold(sql[i:], "advisory") {
				return true
			}
		case sql[i]|0x20 == 't':
			if hasPrefixFold(sql[i:], "temp") {
				return true
			}
		default:
			if hasPrefixFold(sql[i:], "set_config") {
				return true
			}
		}
	}
	return false
}

func firstKeywordRef(sql string) string {
	lx := Lexer{src: sql}
	if t := lx.Next(); t.Kind == TokIdent {
		return t.Text
	}
	return ""
}

// lowerRef lowers ASCII letters only, as the server's keyword lookup does (strings.ToLower
// would also turn the Kelvin sign into k).
func lowerRef(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func keywordRef(w string) Keyword {
	w = lowerRef(w)
	for k, name := range keywordNames {
		if k != int(KwNone) && w == name {
			return Keyword(k)
		}
	}
	return KwNone
}

// leadsRef lists the words whose statements MaybeInteresting always looked at.
var leadsRef = map[string]bool{
	"begin": true, "start": true, "commit": true, "end": true, "abort": true, "rollback": true,
	"set": true, "reset": true, "prepare": true, "execute": true, "deallocate": true,
	"discard": true, "listen": true, "unlisten": true, "notify": true, "declare": true,
	"create": true, "load": true, "close": true, "do": true,
}

func maybeInterestingRef(sql string) bool {
	if leadsRef[lowerRef(firstKeywordRef(sql))] {
		return true
	}
	return hasTriggerRef(sql) && lexInteresting(sql)
}

func checkLead(t testing.TB, sql string) {
	t.Helper()
	first := firstKeywordRef(sql)
	want := Lead{Keyword: keywordRef(first), More: MayHoldMore(sql), Interesting: maybeInterestingRef(sql)}
	if got := LeadOf(sql); got != want {
		t.Fatalf("LeadOf(%q) = %+v, want %+v", sql, got, want)
	}
	if got := FirstKeyword(sql); got != first {
		t.Fatalf("FirstKeyword(%q) = %q, want %q", sql, got, first)
	}
	if got, want := hasTrigger(sql), hasTriggerRef(sql); got != want {
		t.Fatalf("hasTrigger(%q) = %v, want %v", sql, got, want)
	}
	low := lowerRef(sql)
	wantWord := strings.Contains(low, "advisory") || strings.Contains(low, "temp") || strings.Contains(low, "set_config")
	if got := hasTriggerWord(sql); got != wantWord {
		t.Fatalf("hasTriggerWord(%q) = %v, want %v", sql, got, wantWord)
	}
}

func TestLeadOf(t *testing.T) {
	for _, sql := range []string{
		"", " ", ";", "select 1", "SELECT abalance FROM pgbench_accounts WHERE aid = 4217;",
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1", "explain execute x", "Drop table t",
		"ALTER TABLE t ADD c int", "select 1; drop table t", "/* c */ deallocate all", "DEALLOCATEX",
		"dealloca", "rollback", "ROLLBACKS", "rollbac\u212a", "\u017fet x = 1", "e'x'", `"begin"`,
		"select pg_advisory_lock(1)", "select * into temp t", "select set_config('a', 'b', false)",
		"SELECT SET_CONFIG('a', 'b', false)", "tempe", "TEMP", "adVISORy", "set_confi", "xset_config",
		"select\x1bd", "select \x1bdvisory", "a\xe1dvisory", "select 'advisory'", "select aaaaaaaaad",
		"ssssssssssse", "tttttttte_mp", strings.Repeat("x", 100) + "temp", strings.Repeat("ad", 40),
		"begin; select 1", "select 1;  ;\n", "select 1; x", "with a as (select 1) select * into temporary t from a",
	} {
		checkLead(t, sql)
	}
}

// Every trigger word at every offset of texts of every length up to 40, in lower, upper
// and mixed case, and cut short: the word-at-a-time loop and its tail agree with the
// byte loop wherever a word falls.
func TestLeadOfTriggerPositions(t *testing.T) {
	words := []string{"advisory", "temp", "set_config", "ADVISORY", "Temp", "sEt_CoNfIg", "advisor", "tem", "set_confi", "ad", "se", "te"}
	for _, w := range words {
		for n := len(w); n <= 40; n++ {
			for at := 0; at+len(w) <= n; at++ {
				for _, pad := range []byte{'x', 'a', 'D', 'e', ' ', 0x1b, 0xe1} {
					b := []byte(strings.Repeat(string(pad), n))
					copy(b[at:], w)
					checkLead(t, string(b))
				}
			}
		}
	}
}

// Random texts over an alphabet of the bytes the fast path looks at (and their near
// misses: ESC ORs to ';', 0xe1 to 0xe1, '_' to 0x7f) agree with the old answers.
func TestLeadOfRandom(t *testing.T) {
	const alphabet = "aAdDtTeEsSmMpP_cCoOnNfFiIgGvVrRyY;; \n\x1b\xe1\xc1$'\"-/*(01"
	rng := rand.New(rand.NewPCG(1, 14))
	b := make([]byte, 0, 48)
	for range 200_000 {
		b = b[:0]
		for range rng.IntN(48) {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		checkLead(t, string(b))
	}
}

func TestKeywordOf(t *testing.T) {
	for k, name := range keywordNames {
		if k == int(KwNone) {
			continue
		}
		for _, w := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			require.Equal(t, Keyword(k), KeywordOf(w), w)
			require.Equal(t, name, KeywordOf(w).String())
			// In a longer text the word's bytes are read eight at a time, the bytes
			// after it masked off.
			for _, sql := range []string{w + " x", w + "\tabcdefghijklmnop", "  /**/ " + w + "(1)", w + ";"} {
				checkLead(t, sql)
				require.Equal(t, Keyword(k), LeadOf(sql).Keyword, sql)
			}
		}
		for _, w := range []string{name[1:], name[:len(name)-1], name + "s", "x" + name, name + "_", name + "\x00",
			name[:len(name)-1] + string(name[len(name)-1]^0x20^0x40), name + name} {
			require.Equal(t, keywordRef(w), KeywordOf(w), "%q", w)
			checkLead(t, w+" abcdefghijk")
			checkLead(t, w)
		}
	}
	require.Equal(t, KwNone, KeywordOf("rollbac\u212a"), "the Kelvin sign is no k to the server")
	require.Equal(t, "Keyword(200)", Keyword(200).String())
	rng := rand.New(rand.NewPCG(2, 14))
	const alphabet = "abcdeilmnoprstuwxyABDEKLOST_$0\x00\x80\xe1"
	for range 100_000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := KeywordOf(string(b)), keywordRef(string(b)); got != want {
			t.Fatalf("KeywordOf(%q) = %v, want %v", b, got, want)
		}
	}
}

func TestLeadAllocs(t *testing.T) {
	for _, in := range benchInputs {
		require.Zero(t, testing.AllocsPerRun(100, func() { LeadOf(in.sql) }), in.name)
	}
}

// FuzzLeadOf: LeadOf, FirstKeyword, KeywordOf and the trigger search give the answers
// of the byte-at-a-time versions they replace.
func FuzzLeadOf(f *testing.F) {
	for _, in := range benchInputs {
		f.Add(in.sql)
	}
	for _, s := range []string{"explain execute x", "SeT_cOnFiG", "select 1; DROP t", "dealloca te", "te\x1bmp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		checkLead(t, sql)
		if w := firstKeywordRef(sql); KeywordOf(w) != keywordRef(w) {
			t.Fatalf("KeywordOf(%q) = %v, want %v", w, KeywordOf(w), keywordRef(w))
		}
	})
}
