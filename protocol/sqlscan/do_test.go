package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// describe is "Kind:Name" ("+lock" with advisory lock calls) for every statement of
// sql and, depth first, of its DO blocks; a DO statement is "Do".
func describe(sql string) []string {
	var out []string
	for st := range All(Scan(sql)) {
		s := st.Kind.String()
		if st.Do != nil {
			s = "Do"
		}
		if st.Name != "" {
			s += ":" + st.Name
		}
		if st.AdvisoryLock > 0 {
			s += "+lock"
		}
		out = append(out, s)
	}
	return out
}

// doBlock returns the Block of the only statement of sql, which must be a DO.
func doBlock(t *testing.T, sql string) *Block {
	t.Helper()
	stmts := Scan(sql)
	require.Len(t, stmts, 1, sql)
	require.NotNil(t, stmts[0].Do, "Do of %q", sql)
	return stmts[0].Do
}

func TestDoForms(t *testing.T) {
	cases := []struct {
		name, sql, lang, body string
	}{
		{"dollar", `DO $$BEGIN LISTEN "ch"; END$$`, "plpgsql", `BEGIN LISTEN "ch"; END`},
		{"tagged", "do $x$ begin listen a; end $x$", "plpgsql", " begin listen a; end "},
		{"single quoted", `DO 'BEGIN RAISE NOTICE ''hi''; END'`, "plpgsql", `BEGIN RAISE NOTICE 'hi'; END`},
		{"escape string", `DO E'BEGIN RAISE NOTICE \'a\\tb\'; END'`, "plpgsql", `BEGIN RAISE NOTICE 'a\tb'; END`},
		{"escape codes", `DO E'\x41\101\u0041\n'`, "plpgsql", "AAA\n"},
		{"unicode string", `DO U&'BEGIN LISTEN \0061; END'`, "plpgsql", "BEGIN LISTEN a; END"},
		{"language first", "DO LANGUAGE plpgsql $x$BEGIN NULL; END$x$", "plpgsql", "BEGIN NULL; END"},
		{"language last", "DO $$BEGIN NULL; END$$ LANGUAGE PLPGSQL", "plpgsql", "BEGIN NULL; END"},
		{"language string", "DO LANGUAGE 'plpgsql' 'BEGIN NULL; END'", "plpgsql", "BEGIN NULL; END"},
		{"language string keeps case", "DO LANGUAGE 'PLPGSQL' 'x'", "PLPGSQL", "x"},
		{"other language", "DO LANGUAGE plpython3u $$plpy.execute('LISTEN x')$$", "plpython3u", "plpy.execute('LISTEN x')"},
		{"continued string", "DO 'BEGIN '\n  'LISTEN a; ' -- c\n\n'END'", "plpgsql", "BEGIN LISTEN a; END"},
		{"continued escape string", "DO E'a\\t'\r\n'\\n' LANGUAGE 'plpg'\n'sql'", "plpgsql", "a\t\n"},
		{"continued unicode string", "DO U&'\\0061'\n'\\0062'", "plpgsql", "ab"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := doBlock(t, c.sql)
			require.Equal(t, c.lang, b.Language)
			require.Equal(t, c.body, b.Body)
			require.Equal(t, c.lang != "plpgsql", b.Dynamic)
		})
	}
	for _, bad := range []string{"DO", "DO LANGUAGE plpgsql", "DO $$a$$ $$b$$", "DO 'unterminated", "DO $$x",
		"DO 'a'' ", "DO B'101'", "DO $$x$$ LANGUAGE", "DO $$x$$ LANGUAGE a LANGUAGE b", "DO x",
		"DO 'a' 'b'", "DO 'a' /* c */\n'b'", "DO 'a'\n'b", "DO $$a$$\n'b'", "DO 'a'\n$$b$$", "DO 'a'\nB'1'"} {
		stmts := Scan(bad)
		require.Len(t, stmts, 1, bad)
		require.Nil(t, stmts[0].Do, "Do of %q", bad)
		require.Equal(t, KindOther, stmts[0].Kind)
	}
}

func TestDoStatements(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []string
	}{
		{"listen", `DO $$BEGIN LISTEN "Ch"; END$$`, []string{"Do", "Listen:Ch"}},
		{"many kinds", `DO $$
			DECLARE
				listen int := 1;  -- a variable, not a statement
				c CURSOR FOR SELECT 1;
			BEGIN
				SET search_path = app;
				CREATE TEMP TABLE t (a int);
				PREPARE p AS SELECT 1;
				LOAD 'auto_explain';
				UNLISTEN *;
				SET LOCAL work_mem = '1MB';
				RESET ALL;
				COMMIT;
				NOTIFY ch, 'x';
			END $$`, []string{"Do", "Set:search_path", "CreateTemp:t", "Prepare:p", "Load", "UnlistenAll",
			"SetLocal:work_mem", "ResetAll", "Commit", "Notify:ch"}},
		{"control structures stripped", `DO $$
			<<outer>>
			BEGIN
				IF (SELECT CASE WHEN true THEN 1 END) = 1 THEN LISTEN a;
				ELSIF false THEN LISTEN b;
				ELSE LISTEN c;
				END IF;
				CASE x WHEN 1 THEN UNLISTEN a; ELSE UNLISTEN b; END CASE;
				FOR i IN 1..3 LOOP CREATE TEMP TABLE IF NOT EXISTS t2 (a int); END LOOP;
				WHILE false LOOP LISTEN d; END LOOP;
				LOOP EXIT; END LOOP;
				<<inner>> DECLARE v int; BEGIN LISTEN e; END inner;
			EXCEPTION WHEN division_by_zero OR others THEN LISTEN f;
			END outer $$`,
			[]string{"Do", "Listen:a", "Listen:b", "Listen:c", "Unlisten:a", "Unlisten:b", "CreateTemp:t2", "Listen:d",
				"Other", "Listen:e", "Listen:f"}},
		{"perform and expressions", `DO $$DECLARE got bool := pg_try_advisory_lock(1);
			BEGIN
				PERFORM pg_advisory_lock(2);
				got := pg_try_advisory_lock(3);
				SELECT pg_advisory_lock(4) INTO got;
				IF pg_try_advisory_lock(5) THEN NULL; END IF;
			END$$`, []string{"Do+lock", "Other+lock", "Other+lock", "Other+lock", "Other"}},
		{"assignments are not statements", `DO $$DECLARE load int; r record; BEGIN
				load := 1; load = 2; r.listen := 3; listen := 4;
			END$$`, []string{"Do", "Other", "Other", "Other", "Other"}},
		{"empty declare section", `DO $$DECLARE BEGIN LISTEN a; DECLARE BEGIN LISTEN b; END; END$$`, []string{"Do", "Listen:a", "Listen:b"}},
		{"select into a variable named temp", `DO $$DECLARE temp int; BEGIN SELECT 1 INTO temp; END$$`, []string{"Do", "Other"}},
		{"execute literal", `DO $$BEGIN EXECUTE 'LISTEN x'; EXECUTE 'SET a.b = ' || '1' INTO v USING 1; END$$`,
			[]string{"Do", "Listen:x", "Set:a.b"}},
		{"execute continued literal", "DO $$BEGIN EXECUTE 'LISTEN '\n'cont'; END$$", []string{"Do", "Listen:cont"}},
		{"execute literal with several statements", `DO $$BEGIN EXECUTE $q$LISTEN a; CREATE TEMP TABLE t (a int)$q$; END$$`,
			[]string{"Do", "Listen:a", "CreateTemp:t"}},
		{"execute lock", `DO $$BEGIN EXECUTE 'SELECT pg_advisory_lock(1)'; END$$`, []string{"Do", "Other+lock"}},
		{"for in execute", `DO $$DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT pg_advisory_lock(1)' LOOP NULL; END LOOP; END$$`,
			[]string{"Do", "Other+lock", "Other"}},
		{"return query execute", `DO $$BEGIN RETURN QUERY EXECUTE 'SELECT pg_advisory_lock(7)'; END$$`, []string{"Do", "Other+lock"}},
		{"execute is never a prepared statement", `DO $$BEGIN EXECUTE format('LISTEN %I', 'x'); END$$`, []string{"Do"}},
		{"nested do", `DO $a$BEGIN DO $b$BEGIN LISTEN deep; END$b$; END$a$`, []string{"Do", "Do", "Listen:deep"}},
		{"do in execute literal", `DO $a$BEGIN EXECUTE 'DO $b$BEGIN PERFORM pg_advisory_lock(1); CREATE TEMP TABLE x (); END$b$'; END$a$`,
			[]string{"Do", "Do+lock", "Other+lock", "CreateTemp:x"}},
		{"single quoted nested execute", `DO 'BEGIN EXECUTE ''LISTEN "q;x"''; END'`, []string{"Do", `Listen:q;x`}},
		{"quotes and comments hide semicolons", `DO $$BEGIN /* ; LISTEN no; */ -- ; LISTEN no2
				RAISE NOTICE '; LISTEN no3'; PERFORM $q$;$q$; LISTEN yes; END$$`, []string{"Do", "Other", "Other", "Listen:yes"}},
		{"begin atomic inside", `DO $$BEGIN CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; LISTEN z; END$$`,
			[]string{"Do", "Other", "Listen:z"}},
		{"multi statement query", "SELECT 1; DO $$BEGIN LISTEN a; END$$; LISTEN b", []string{"Other", "Do", "Listen:a", "Listen:b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := describe(c.sql)
			require.Equal(t, c.want, got)
		})
	}
}

func TestDoFlags(t *testing.T) {
	long := `"` + strings.Repeat("c", 64) + `"`
	cases := []struct {
		name, sql                   string
		listenOnly, straight, dynam bool
	}{
		{"listen", `DO $$BEGIN LISTEN "ch"; END$$`, true, true, false},
		{"single quoted", `DO 'BEGIN LISTEN ch; UNLISTEN other; END;'`, true, true, false},
		{"tagged with language", "DO LANGUAGE plpgsql $x$ begin listen a; unlisten *; end $x$", true, true, false},
		{"language after", "DO $$BEGIN LISTEN a; END$$ LANGUAGE plpgsql", true, true, false},
		{"nested blocks", "DO $$BEGIN BEGIN LISTEN a; END; LISTEN b; END$$", true, true, false},
		{"comments", "DO $$ -- hi\n BEGIN /* x */ LISTEN a; END -- bye\n$$", true, true, false},
		{"empty block", "DO $$BEGIN END$$", false, true, false},
		{"other statement", "DO $$BEGIN LISTEN a; PERFORM 1; END$$", false, true, false},
		{"raise", "DO $$BEGIN LISTEN a; RAISE NOTICE 'x'; END$$", false, false, false},
		{"label", "DO $$<<l>> BEGIN LISTEN a; END l$$", false, true, false},
		{"declare", "DO $$DECLARE x int; BEGIN LISTEN a; END$$", false, true, false},
		{"conditional", "DO $$BEGIN IF true THEN LISTEN a; END IF; END$$", false, false, false},
		{"exception", "DO $$BEGIN LISTEN a; EXCEPTION WHEN others THEN NULL; END$$", false, false, false},
		{"return", "DO $$BEGIN LISTEN a; RETURN; END$$", false, false, false},
		{"no block", "DO $$LISTEN a$$", false, true, false},
		{"missing end", "DO $$BEGIN LISTEN a;$$", false, true, false},
		{"extra end", "DO $$BEGIN LISTEN a; END; END$$", false, true, false},
		{"text after end", "DO $$BEGIN LISTEN a; END; LISTEN b$$", false, true, false},
		{"empty statement", "DO $$BEGIN LISTEN a;; END$$", false, true, false},
		{"missing semicolon", "DO $$BEGIN LISTEN a LISTEN b; END$$", false, true, false},
		{"nested end needs semicolon", "DO $$BEGIN BEGIN LISTEN a; END END$$", false, true, false},
		{"qualified channel", "DO $$BEGIN LISTEN a.b; END$$", false, true, false},
		{"truncated channel", "DO $$BEGIN LISTEN " + long + "; END$$", false, true, false},
		{"reserved word channel", "DO $$BEGIN LISTEN Select; END$$", false, true, false},
		{"type name keyword channel", "DO $$BEGIN UNLISTEN left; END$$", false, true, false},
		{"unreserved keyword channel", `DO $$BEGIN LISTEN begin; LISTEN "select"; LISTEN name; END$$`, true, true, false},
		{"execute literal", "DO $$BEGIN EXECUTE 'LISTEN a'; END$$", false, true, false},
		{"dynamic execute", "DO $$BEGIN EXECUTE 'LISTEN ' || quote_ident(x); END$$", false, true, true},
		{"dynamic in nested", "DO $a$BEGIN DO $b$BEGIN EXECUTE x; END$b$; END$a$", false, true, true},
		{"flow in nested", "DO $a$BEGIN EXECUTE 'DO $b$BEGIN IF x THEN NULL; END IF; END$b$'; END$a$", false, false, false},
		{"other language", "DO LANGUAGE plperl 'spi_exec_query(q{LISTEN a})'", false, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := doBlock(t, c.sql)
			require.Equal(t, c.listenOnly, b.ListenOnly, "ListenOnly")
			require.Equal(t, c.straight, b.Straight, "Straight")
			require.Equal(t, c.dynam, b.Dynamic, "Dynamic")
		})
	}
}

func TestDoNestingIsBounded(t *testing.T) {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	// levels DO blocks, each running the next through EXECUTE of a literal.
	nested := func(levels int) string {
		sql := "LISTEN deep"
		for range levels {
			sql = "DO " + quote("BEGIN EXECUTE "+quote(sql)+"; END")
		}
		return sql
	}
	sql := nested(maxNest)
	require.Contains(t, describe(sql), "Listen:deep")
	require.False(t, doBlock(t, sql).Dynamic)

	sql = nested(maxNest + 1) // past maxNest pgmux stops reading: the block is dynamic
	require.NotContains(t, describe(sql), "Listen:deep")
	require.True(t, doBlock(t, sql).Dynamic)
}
