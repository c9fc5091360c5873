package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// TestClassifyPins: what a request's text does to session state in transaction mode:
// the pins it makes, whether it may release one (pgmux then asks the server whether any
// state is left), and the transaction block it begins or ends. Text alone, no server.
func TestClassifyPins(t *testing.T) {
	for _, tc := range []struct {
		sql        string
		pin        pinReason
		release    bool
		begin, end bool
	}{
		{"SELECT 1", 0, false, false, false},
		{"select pg_advisory_lock(1)", pinAdvisory, false, false, false},
		{"select pg_advisory_xact_lock(1)", 0, false, false, false},
		{"select pg_advisory_unlock(1)", 0, true, false, false},
		{"select pg_advisory_unlock_all()", 0, true, false, false},
		{"LISTEN jobs", pinListen, false, false, false},
		{"UNLISTEN *", 0, true, false, false},
		{"PREPARE p AS SELECT 1", pinPrepare, false, false, false},
		{"DEALLOCATE p", 0, true, false, false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", pinHold, false, false, false},
		{"DECLARE c CURSOR FOR SELECT 1", 0, false, false, false},
		{"CLOSE c", 0, true, false, false},
		{"CREATE TEMP TABLE t (a int)", pinTemp, false, false, false},
		{"drop table t", 0, true, false, false},
		{"/* x */ DROP TABLE t", 0, true, false, false},
		{"SELECT 1; DROP TABLE t", 0, true, false, false},
		{"SELECT 'drop'; SELECT 1", 0, false, false, false},
		{"SELECT 1 AS dropped", 0, false, false, false},
		{"SELECT dropped FROM t WHERE id = $1;", 0, false, false, false},
		{"SELECT 1; ; drop table t", 0, true, false, false},
		{"drop table t;", 0, true, false, false},
		{"SET ROLE alice", pinRole, false, false, false},
		{"LOAD 'auto_explain'", pinLoad, false, false, false},
		{"DISCARD ALL", 0, true, false, false},
		{"RESET ALL", 0, true, false, false},
		{"BEGIN", 0, false, true, false},
		{"COMMIT", 0, true, false, true},
		{"ROLLBACK", 0, true, false, true},
		{"BEGIN; SELECT pg_advisory_lock(1); COMMIT", pinAdvisory, true, true, true},
		{"select $$ ; listen x $$", 0, false, false, false},
		// A DO block's statements may not all run: it pins and asks afterwards.
		{"DO $$BEGIN PERFORM pg_advisory_lock(1); END$$", pinAdvisory, true, false, false},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			v := classifyText(tc.sql, sqlscan.MaybeInteresting(tc.sql))
			require.Equal(t, tc.pin, v.pin, "pin %v", v.pin)
			require.Equal(t, tc.release, v.release, "release")
			require.Equal(t, tc.begin, v.begin, "begin")
			require.Equal(t, tc.end, v.end, "end")
			require.Equal(t, v, classifyText(tc.sql, true), "the fast path agrees with the full scan")
		})
	}
}

// FuzzClassify: the fast path (sqlscan.MaybeInteresting false: no full scan) never hides
// a pin, a release, a transaction boundary or a setting that the full scan finds.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "select 1; drop table t", "LISTEN x", "begin; select pg_advisory_lock(1)",
		"DO $$BEGIN LISTEN x; END$$", "set search_path = a", "select set_config('a.b', $1, false)",
		"select 'drop'; select 2", "/* drop */ select 1;", "select drop_at from t;  ;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 4096 {
			return
		}
		full := classifyText(sql, true)
		fast := classifyText(sql, sqlscan.MaybeInteresting(sql))
		require.Equal(t, full, fast, "%q", sql)
	})
}
