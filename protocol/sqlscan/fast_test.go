package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMayHoldMore(t *testing.T) {
	for sql, want := range map[string]bool{
		"select 1":                     false,
		"select 1;":                    false,
		"select 1 ; ;\n":               false,
		"select 1; select":             true,
		"select 'a;b'":                 true, // over-approximation: a ';' in a literal counts
		"do $$begin perform 1; end$$;": true,
	} {
		require.Equal(t, want, MayHoldMore(sql), "%q", sql)
	}
}

// A ';' with nothing but whitespace after it starts no statement: such text needs no
// full lex (pgbench and most drivers end their one statement with it).
func TestTrailingSemicolonIsNoTrigger(t *testing.T) {
	for sql, want := range map[string]bool{
		"select 1;":        false,
		"select 1; \n;\t ": false,
		"select 1;;":       false,
		"select 1; x":      true,
		"select 1; ;x":     true,
		"select 'a;' ; ":   true, // the quoted ';' is not trailing
		"select 1; -- c":   true, // over-approximation: a comment is not whitespace
	} {
		require.Equal(t, want, hasTrigger(sql), "%q", sql)
	}
}

func TestMaybeInteresting(t *testing.T) {
	cases := []struct {
		sql  string
		want bool
	}{
		{"select 1", false},
		{"SELECT * FROM accounts WHERE id = $1", false},
		{"insert into t values (1, 'x')", false},
		{"update t set a = 1 where b = 2", false}, // "set" not leading
		{"delete from t", false},
		{"/* LISTEN x */ select 1", false},
		{"select 'pg_advisory_lock(1)'", false},
		{"select 'a;b'", false},
		{"select 1;", false},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;\n", false},
		{"select 1; ;\t", false},
		{"select 1;\n listen x", true},
		{"select 1; ; begin", true},
		{"listen x;", true},
		{"select 1; select 2", false},
		{"select attempt from t", false},
		{"select $$ ; listen x $$", false},
		{"", false},
		{"   ", false},
		{"BEGIN", true},
		{"  -- c\n set x = 1", true},
		{"select 1; listen x", true},
		{"select pg_advisory_lock(1)", true},
		{"SELECT PG_TRY_ADVISORY_LOCK(1)", true},
		{"select * into temp t from x", true},
		{"with a as (select 1) select * into temporary t from a", true},
		{"do $$ begin perform 1; end $$", true},
		{"/* c */ DO 'BEGIN LISTEN x; END'", true},
		{"select 1; Do $x$ begin listen x; end $x$", true},
		{"select 1;\ndo language plpgsql $$begin end$$", true},
		{"select 'do $$begin listen x; end$$'", false},
		{"create table t(a int)", true}, // over-approximation: any CREATE
		{"commit", true},
		{"DISCARD ALL", true},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			require.Equal(t, c.want, MaybeInteresting(c.sql))
			if !c.want {
				for _, st := range Scan(c.sql) {
					require.Equal(t, KindOther, st.Kind)
				}
			}
		})
	}
}

func TestFirstKeyword(t *testing.T) {
	cases := []struct{ sql, want string }{
		{"SELECT 1", "SELECT"},
		{"  /* x */ -- y\n Begin;", "Begin"},
		{"(select 1)", ""},
		{`"select" 1`, ""},
		{"E'x'", ""},
		{"", ""},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) { require.Equal(t, c.want, FirstKeyword(c.sql)) })
	}
}

func TestHotPathAllocs(t *testing.T) {
	inputs := []string{
		"SELECT * FROM accounts WHERE id = $1 AND name = 'x''y' -- trailing",
		"select 1; select pg_advisory_lock(1); SELECT \"PG_ADVISORY_LOCK\"(1)",
		"with a as (select 1) select * into temp t from a; insert into attempts values (1)",
		"Set Application_Name = 'x'",
		"select 1; DO $$BEGIN LISTEN ch; END$$",
		strings.Repeat("select 1 /* c */; ", 50),
	}
	for _, in := range inputs {
		require.Zero(t, testing.AllocsPerRun(100, func() { MaybeInteresting(in) }), "MaybeInteresting(%q)", in)
		require.Zero(t, testing.AllocsPerRun(100, func() { FirstKeyword(in) }), "FirstKeyword(%q)", in)
		require.Zero(t, testing.AllocsPerRun(100, func() {
			lx := NewLexer(in)
			for lx.Next().Kind != TokEOF {
			}
		}), "Lexer over %q", in)
	}
}

func TestScanAllocs(t *testing.T) {
	// One allocation for the result slice; lowercase names are slices of the input.
	allocs := testing.AllocsPerRun(100, func() { Scan("set application_name = 'x'") })
	require.LessOrEqual(t, allocs, 1.0)
}
