package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// want is the part of a Statement a case checks. Kind, Name, Value, the advisory fields,
// PrepareBody and ParamTypes are always compared; Text only when set.
type want struct {
	Kind        Kind
	Name, Value string
	Text        string
	Lock        int
	Unlock      int
	UnlockAll   bool
	Body        string
	Types       []string
}

func k(kind Kind) want                       { return want{Kind: kind} }
func kn(kind Kind, name string) want         { return want{Kind: kind, Name: name} }
func set(kind Kind, name, value string) want { return want{Kind: kind, Name: name, Value: value} }

func checkScan(t *testing.T, sql string, wants ...want) {
	t.Helper()
	got := Scan(sql)
	require.Len(t, got, len(wants), "statements of %q: %+v", sql, got)
	for i, w := range wants {
		g := got[i]
		require.Equal(t, w.Kind.String(), g.Kind.String(), "kind of statement %d %q", i, g.Text)
		require.Equal(t, w.Name, g.Name, "name of statement %d %q", i, g.Text)
		require.Equal(t, w.Value, g.Value, "value of statement %d %q", i, g.Text)
		require.Equal(t, w.Lock, g.AdvisoryLock, "locks in %q", g.Text)
		require.Equal(t, w.Unlock, g.AdvisoryUnlock, "unlocks in %q", g.Text)
		require.Equal(t, w.UnlockAll, g.AdvisoryUnlockAll, "unlock all in %q", g.Text)
		require.Equal(t, w.Body, g.PrepareBody, "prepare body of %q", g.Text)
		require.Equal(t, w.Types, g.ParamTypes, "param types of %q", g.Text)
		if w.Text != "" {
			require.Equal(t, w.Text, g.Text)
		}
		require.True(t, strings.Contains(sql, g.Text))
	}
}

func TestScanTransactions(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []want
	}{
		{"begin", "BEGIN", []want{k(KindBegin)}},
		{"begin work isolation", "begin work isolation level serializable", []want{k(KindBegin)}},
		{"begin transaction", "Begin Transaction Read Only;", []want{k(KindBegin)}},
		{"start transaction", "START TRANSACTION ISOLATION LEVEL REPEATABLE READ", []want{k(KindBegin)}},
		{"start alone", "start", []want{k(KindOther)}},
		{"commit", "commit", []want{k(KindCommit)}},
		{"commit and chain", "COMMIT WORK AND CHAIN", []want{k(KindCommit)}},
		{"end", "END TRANSACTION", []want{k(KindCommit)}},
		{"commit prepared", "COMMIT PREPARED 'gid'", []want{k(KindOther)}},
		{"rollback", "ROLLBACK", []want{k(KindRollback)}},
		{"abort", "abort work", []want{k(KindRollback)}},
		{"rollback to savepoint", "ROLLBACK TO SAVEPOINT s1", []want{k(KindOther)}},
		{"rollback work to", "rollback work to s1", []want{k(KindOther)}},
		{"rollback prepared", "rollback prepared 'gid'", []want{k(KindOther)}},
		{"savepoint", "SAVEPOINT s1", []want{k(KindOther)}},
		{"prepare transaction", "PREPARE TRANSACTION 'gid'", []want{k(KindOther)}},
		{"multi", "begin; select pg_advisory_lock(1); commit", []want{
			{Kind: KindBegin, Text: "begin"},
			{Kind: KindOther, Lock: 1, Text: "select pg_advisory_lock(1)"},
			{Kind: KindCommit, Text: "commit"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkScan(t, c.sql, c.want...) })
	}
}

func TestScanSetReset(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []want
	}{
		{"search_path quoted", `SET search_path TO "My Schema", public`,
			[]want{set(KindSet, "search_path", `"My Schema", public`)}},
		{"equals", "set application_name = 'x'", []want{set(KindSet, "application_name", "'x'")}},
		{"no space equals", "set statement_timeout=-1", []want{set(KindSet, "statement_timeout", "-1")}},
		{"session scope", "SET SESSION DateStyle TO ISO, MDY", []want{set(KindSet, "datestyle", "ISO, MDY")}},
		{"local", "set local statement_timeout = 5", []want{set(KindSetLocal, "statement_timeout", "5")}},
		{"local time zone", "SET LOCAL TIME ZONE 'UTC'", []want{set(KindSetLocal, "timezone", "'UTC'")}},
		{"time zone", "SET TIME ZONE 'UTC'", []want{set(KindSet, "timezone", "'UTC'")}},
		{"time zone local", "set time zone local", []want{set(KindSet, "timezone", "DEFAULT")}},
		{"local time zone default", "SET LOCAL TIME ZONE DEFAULT", []want{set(KindSetLocal, "timezone", "DEFAULT")}},
		{"time zone 'local'", "SET TIME ZONE 'local'", []want{set(KindSet, "timezone", "'local'")}},
		{"time zone interval", "set time zone interval '+02:00' hour to minute",
			[]want{set(KindSet, "timezone", "interval '+02:00' hour to minute")}},
		{"names", "SET NAMES 'UTF8'", []want{set(KindSet, "client_encoding", "'UTF8'")}},
		{"names default", "SET NAMES", []want{set(KindSet, "client_encoding", "DEFAULT")}},
		{"schema", "SET SCHEMA 'app'", []want{set(KindSet, "search_path", "'app'")}},
		{"xml option", "SET XML OPTION DOCUMENT", []want{set(KindSet, "xmloption", "DOCUMENT")}},
		{"default", "SET work_mem TO default", []want{set(KindSet, "work_mem", "DEFAULT")}},
		{"from current", "SET work_mem FROM CURRENT", []want{set(KindSet, "work_mem", "FROM CURRENT")}},
		{"custom dotted", `SET myapp.User_ID = '42'`, []want{set(KindSet, "myapp.user_id", "'42'")}},
		{"quoted name", `SET "Foo"."Bar" TO 1`, []want{set(KindSet, "Foo.Bar", "1")}},
		{"name local prefix", "SET local.x = 1", []want{set(KindSet, "local.x", "1")}},
		{"comments inside value", "SET search_path = a, /* c */ b -- tail", []want{set(KindSet, "search_path", "a, /* c */ b")}},
		{"transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
			[]want{{Kind: KindSetLocal, Value: "ISOLATION LEVEL SERIALIZABLE"}}},
		{"session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", []want{k(KindSetCharacteristics)}},
		{"constraints", "SET CONSTRAINTS ALL DEFERRED", []want{k(KindOther)}},
		{"missing to", "SET work_mem 5", []want{k(KindOther)}},
		{"role", "SET ROLE admin", []want{set(KindSetRole, "role", "admin")}},
		{"role none", "set role none", []want{set(KindSetRole, "role", "none")}},
		{"role generic", "SET role = 'x'", []want{set(KindSetRole, "role", "'x'")}},
		{"session role", "SET SESSION ROLE admin", []want{set(KindSetRole, "role", "admin")}},
		{"local role", "SET LOCAL ROLE admin", []want{set(KindSetLocal, "role", "admin")}},
		{"session authorization", "SET SESSION AUTHORIZATION 'bob'",
			[]want{set(KindSetRole, "session_authorization", "'bob'")}},
		{"session authorization default", "set session authorization default",
			[]want{set(KindSetRole, "session_authorization", "DEFAULT")}},
		{"reset", "RESET search_path", []want{kn(KindReset, "search_path")}},
		{"reset all", "reset all", []want{k(KindResetAll)}},
		{"reset quoted all", `RESET "all"`, []want{kn(KindReset, "all")}},
		{"reset role", "RESET ROLE", []want{kn(KindReset, "role")}},
		{"reset session authorization", "RESET SESSION AUTHORIZATION", []want{kn(KindReset, "session_authorization")}},
		{"reset time zone", "RESET TIME ZONE", []want{kn(KindReset, "timezone")}},
		{"reset isolation", "RESET TRANSACTION ISOLATION LEVEL", []want{kn(KindReset, "transaction_isolation")}},
		{"reset dotted", "RESET MyApp.X", []want{kn(KindReset, "myapp.x")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkScan(t, c.sql, c.want...) })
	}
}

func TestScanSessionObjects(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []want
	}{
		{"prepare", "prepare p(int) as select $1",
			[]want{{Kind: KindPrepare, Name: "p", Body: "select $1", Types: []string{"int"}}}},
		{"prepare types", `PREPARE "Q1" (character varying(10), numeric(10, 2), int[]) AS insert into t values ($1, $2, $3)`,
			[]want{{Kind: KindPrepare, Name: "Q1", Body: "insert into t values ($1, $2, $3)",
				Types: []string{"character varying(10)", "numeric(10, 2)", "int[]"}}}},
		{"prepare no types", "PREPARE Stmt AS SELECT 1", []want{{Kind: KindPrepare, Name: "stmt", Body: "SELECT 1"}}},
		{"prepare empty parens", "PREPARE p () AS SELECT 1", []want{{Kind: KindPrepare, Name: "p", Body: "SELECT 1"}}},
		{"prepare named transaction", "PREPARE transaction AS SELECT 1",
			[]want{{Kind: KindPrepare, Name: "transaction", Body: "SELECT 1"}}},
		{"prepare without as", "PREPARE p(int)", []want{k(KindOther)}},
		{"execute", "execute p(1)", []want{kn(KindExecute, "p")}},
		{"execute quoted", `EXECUTE "P"`, []want{kn(KindExecute, "P")}},
		{"deallocate", "DEALLOCATE p", []want{kn(KindDeallocate, "p")}},
		{"deallocate prepare", "deallocate prepare P", []want{kn(KindDeallocate, "p")}},
		{"deallocate named prepare", "deallocate prepare", []want{kn(KindDeallocate, "prepare")}},
		{"deallocate all", "DEALLOCATE ALL", []want{k(KindDeallocateAll)}},
		{"deallocate prepare all", "DEALLOCATE PREPARE ALL", []want{k(KindDeallocateAll)}},
		{"discard all", "DISCARD ALL", []want{k(KindDiscardAll)}},
		{"discard plans", "discard plans", []want{kn(KindDiscard, "plans")}},
		{"discard temp", "DISCARD TEMPORARY", []want{kn(KindDiscard, "temporary")}},
		{"discard sequences", "DISCARD SEQUENCES", []want{kn(KindDiscard, "sequences")}},
		{"listen", "listen Chan", []want{kn(KindListen, "chan")}},
		{"listen quoted", `LISTEN "Chan"`, []want{kn(KindListen, "Chan")}},
		{"listen unicode ident", `LISTEN U&"d\0061ta"`, []want{kn(KindListen, "data")}},
		{"unlisten", "UNLISTEN chan", []want{kn(KindUnlisten, "chan")}},
		{"unlisten all", "unlisten *", []want{k(KindUnlistenAll)}},
		{"notify", "NOTIFY chan", []want{kn(KindNotify, "chan")}},
		{"notify payload", "NOTIFY chan, 'hello; world'", []want{set(KindNotify, "chan", "'hello; world'")}},
		{"declare hold", "declare c cursor with hold for select 1", []want{kn(KindDeclareHold, "c")}},
		{"declare options hold", "DECLARE C BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT 1", []want{kn(KindDeclareHold, "c")}},
		{"declare without hold", "declare c cursor without hold for select 1", []want{k(KindOther)}},
		{"declare plain", "declare c cursor for with hold as (select 1) select * from hold", []want{k(KindOther)}},
		{"create temporary table", "create temporary table t(i int)", []want{kn(KindCreateTemp, "t")}},
		{"create temp view", "CREATE TEMP VIEW v AS SELECT 1", []want{kn(KindCreateTemp, "v")}},
		{"create local temp", "CREATE LOCAL TEMP TABLE IF NOT EXISTS s.T (a int)", []want{kn(KindCreateTemp, "t")}},
		{"create global temporary sequence", "create global temporary sequence q", []want{kn(KindCreateTemp, "q")}},
		{"create or replace temp recursive view", "CREATE OR REPLACE TEMP RECURSIVE VIEW v(n) AS SELECT 1",
			[]want{kn(KindCreateTemp, "v")}},
		{"create pg_temp table", "CREATE TABLE pg_temp.x (a int)", []want{kn(KindCreateTemp, "x")}},
		{"create pg_temp function", "create or replace function pg_temp.f() returns int language sql as 'select 1'",
			[]want{kn(KindCreateTemp, "f")}},
		{"create plain table", "CREATE TABLE t (a int)", []want{k(KindOther)}},
		{"create unlogged", "CREATE UNLOGGED TABLE t (a int)", []want{k(KindOther)}},
		{"create table as from pg_temp", "CREATE TABLE t AS SELECT * FROM pg_temp.x", []want{k(KindOther)}},
		{"select into temp", "SELECT * INTO TEMP TABLE t FROM x", []want{k(KindCreateTemp)}},
		{"select into local temp", "select 1 into local temporary t", []want{k(KindCreateTemp)}},
		{"select into pg_temp", "select 1 into table pg_temp.t", []want{k(KindCreateTemp)}},
		{"select into plain", "select 1 into t", []want{k(KindOther)}},
		{"insert into temp table named temp", "with c as (select 1) insert into temp select * from c", []want{k(KindOther)}},
		{"load", "LOAD 'auto_explain'", []want{set(KindLoad, "", "'auto_explain'")}},
		{"close", "close C", []want{kn(KindClose, "c")}},
		{"close all", "CLOSE ALL", []want{set(KindClose, "", "ALL")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkScan(t, c.sql, c.want...) })
	}
}

func TestScanQuotingAndAdvisory(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []want
	}{
		{"lock in string", "select 'pg_advisory_lock(1)'", []want{k(KindOther)}},
		{"lock before comment", "select pg_advisory_lock(1) -- comment", []want{{Kind: KindOther, Lock: 1}}},
		{"lock in comment", "select 1 /* pg_advisory_lock(1) */", []want{k(KindOther)}},
		{"listen in comment", "/* LISTEN x */ select 1", []want{{Kind: KindOther, Text: "select 1"}}},
		{"nested comment", "/* a /* LISTEN x; */ still; */ listen y", []want{kn(KindListen, "y")}},
		{"dollar quote", "select $$ ; listen x $$", []want{k(KindOther)}},
		{"tagged dollar quote", "select $fn$ $$ ; $x$ ; $fn$; LISTEN z", []want{k(KindOther), kn(KindListen, "z")}},
		{"identifier with dollar", "select a$$b$$; listen q", []want{k(KindOther), kn(KindListen, "q")}},
		{"escape string", `select E'it\'s; listen x'; listen y`, []want{k(KindOther), kn(KindListen, "y")}},
		{"standard string backslash", `select 'a\'; listen y`, []want{k(KindOther), kn(KindListen, "y")}},
		{"doubled quotes", "select 'it''s; listen x'", []want{k(KindOther)}},
		{"unicode string", `select U&'d\0061t;a'; set a = 1`, []want{k(KindOther), set(KindSet, "a", "1")}},
		{"quoted ident with semicolon", `select 1 as "a;""b"; begin`, []want{k(KindOther), k(KindBegin)}},
		{"parens do not hide", "select (1; listen x)", []want{k(KindOther), kn(KindListen, "x")}},
		{"empty statements", " ; ;select 1;; -- only\n", []want{k(KindOther)}},
		{"unterminated string", "select 'abc; listen x", []want{k(KindOther)}},
		{"unterminated comment", "select 1; /* listen x", []want{k(KindOther)}},
		{"unterminated dollar", "select $q$ abc; listen x", []want{k(KindOther)}},
		{"qualified lock", "SELECT pg_catalog.PG_ADVISORY_LOCK(1), pg_try_advisory_lock_shared(2)", []want{{Kind: KindOther, Lock: 2}}},
		{"other schema", "select myschema.pg_advisory_lock(1)", []want{k(KindOther)}},
		{"xact lock", "select pg_advisory_xact_lock(1), pg_try_advisory_xact_lock(2)", []want{k(KindOther)}},
		{"no call", "select pg_advisory_lock from t", []want{k(KindOther)}},
		{"quoted call", `select "pg_advisory_lock"(1), "PG_ADVISORY_LOCK"(2)`, []want{{Kind: KindOther, Lock: 1}}},
		{"subquery locks", "select * from (select pg_advisory_lock(id) from t) s where pg_try_advisory_lock(2)",
			[]want{{Kind: KindOther, Lock: 2}}},
		{"unlocks", "select pg_advisory_unlock(1), pg_advisory_unlock_shared(2), pg_advisory_unlock_all()",
			[]want{{Kind: KindOther, Unlock: 2, UnlockAll: true}}},
		{"do block", "DO $$ BEGIN PERFORM pg_advisory_lock(42); END $$", []want{{Kind: KindOther, Lock: 1}}},
		{"lock in set value", "set x = 'pg_advisory_lock(1)'", []want{set(KindSet, "x", "'pg_advisory_lock(1)'")}},
		{"begin atomic", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; listen x",
			[]want{k(KindOther), kn(KindListen, "x")}},
		{"or replace procedure atomic", "create or replace procedure p() begin atomic insert into t values (1); end; commit",
			[]want{k(KindOther), k(KindCommit)}},
		{"column named begin in atomic body", "create function f() returns int language sql begin atomic select begin from t; end; listen x",
			[]want{k(KindOther), kn(KindListen, "x")}},
		{"plpgsql body is a string", "create function f() returns void language plpgsql as $$ begin perform 1; end $$; begin",
			[]want{k(KindOther), k(KindBegin)}},
		{"unbalanced atomic body", "create procedure p() begin atomic select 1; listen x", []want{k(KindOther)}},
		{"leading comment set", "-- hi\n/* there */ SET x = 1 /* trailing */ ;",
			[]want{{Kind: KindSet, Name: "x", Value: "1", Text: "SET x = 1"}}},
		{"long name truncated", "LISTEN " + strings.Repeat("a", 70), []want{kn(KindListen, strings.Repeat("a", 63))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkScan(t, c.sql, c.want...) })
	}
}

func TestScanEmpty(t *testing.T) {
	require.Empty(t, Scan(""))
	require.Empty(t, Scan(" ;; -- nothing"))
}

func TestKindString(t *testing.T) {
	require.Equal(t, "Other", KindOther.String())
	require.Equal(t, "SetLocal", KindSetLocal.String())
	require.Equal(t, "Close", KindClose.String())
	require.Equal(t, "Kind(200)", Kind(200).String())
	for k := KindOther; k <= KindClose; k++ {
		require.NotContains(t, k.String(), "Kind(")
	}
}
