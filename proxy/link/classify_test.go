package link

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
		pin        Pin
		release    bool
		begin, end bool
	}{
		{"SELECT 1", 0, false, false, false},
		{"select pg_advisory_lock(1)", PinAdvisory, false, false, false},
		{"select pg_advisory_xact_lock(1)", 0, false, false, false},
		{"select pg_advisory_unlock(1)", 0, true, false, false},
		{"select pg_advisory_unlock_all()", 0, true, false, false},
		{"LISTEN jobs", PinListen, false, false, false},
		{"UNLISTEN *", 0, true, false, false},
		{"PREPARE p AS SELECT 1", PinPrepare, false, false, false},
		{"DEALLOCATE p", 0, true, false, false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", PinHold, false, false, false},
		{"DECLARE c CURSOR FOR SELECT 1", 0, false, false, false},
		{"CLOSE c", 0, true, false, false},
		{"CREATE TEMP TABLE t (a int)", PinTemp, false, false, false},
		{"drop table t", 0, true, false, false},
		{"/* x */ DROP TABLE t", 0, true, false, false},
		{"SELECT 1; DROP TABLE t", 0, true, false, false},
		{"SELECT 'drop'; SELECT 1", 0, false, false, false},
		{"SELECT 1 AS dropped", 0, false, false, false},
		{"SELECT dropped FROM t WHERE id = $1;", 0, false, false, false},
		{"SELECT 1; ; drop table t", 0, true, false, false},
		{"drop table t;", 0, true, false, false},
		{"SET ROLE alice", PinRole, false, false, false},
		{"LOAD 'auto_explain'", PinLoad, false, false, false},
		{"DISCARD ALL", 0, true, false, false},
		{"RESET ALL", 0, true, false, false},
		{"BEGIN", 0, false, true, false},
		{"COMMIT", 0, true, false, true},
		{"ROLLBACK", 0, true, false, true},
		{"BEGIN; SELECT pg_advisory_lock(1); COMMIT", PinAdvisory, true, true, true},
		{"select $$ ; listen x $$", 0, false, false, false},
		// A DO block's statements may not all run: it pins and asks afterwards.
		{"DO $$BEGIN PERFORM pg_advisory_lock(1); END$$", PinAdvisory, true, false, false},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			v := ClassifyText(tc.sql, sqlscan.MaybeInteresting(tc.sql))
			require.Equal(t, tc.pin, v.Pin, "pin %v", v.Pin)
			require.Equal(t, tc.release, v.Release, "release")
			require.Equal(t, tc.begin, v.Begin, "begin")
			require.Equal(t, tc.end, v.End, "end")
			require.Equal(t, v, ClassifyText(tc.sql, true), "the fast path agrees with the full scan")
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
		full := ClassifyText(sql, true)
		fast := ClassifyText(sql, sqlscan.MaybeInteresting(sql))
		require.Equal(t, full, fast, "%q", sql)
	})
}

// TestSetTouchDefault: the statements that give a setting its reset value: SET and RESET
// for the session, SET LOCAL ... TO DEFAULT for the transaction alone, and set_config
// with a NULL value, a reset that may not run (Cond); SET TRANSACTION names nothing.
func TestSetTouchDefault(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want *SetTouch
	}{
		{"SET TimeZone TO DEFAULT", &SetTouch{Ops: []SetOp{{Name: "timezone", Reset: true}}}},
		{"SET TIME ZONE LOCAL", &SetTouch{Ops: []SetOp{{Name: "timezone", Reset: true}}}},
		{"SET LOCAL statement_timeout = default", &SetTouch{Ops: []SetOp{{Name: "statement_timeout", Reset: true, Local: true}}}},
		{"SET LOCAL TIME ZONE LOCAL", &SetTouch{Ops: []SetOp{{Name: "timezone", Reset: true, Local: true}}}},
		{"SET LOCAL statement_timeout = 5", nil},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", nil},
		{"SET LOCAL transaction_isolation TO DEFAULT", nil},
		{"SELECT set_config('a.x', NULL, false)", &SetTouch{Ops: []SetOp{{Name: "a.x", Reset: true}}, Cond: true}},
		{"SELECT set_config('a.x', NULL, true)", &SetTouch{Ops: []SetOp{{Name: "a.x", Reset: true, Local: true}}, Cond: true}},
		{"SELECT set_config('a.x', 'NULL', false)", &SetTouch{Ops: []SetOp{{Name: "a.x"}}}},
		{"SELECT set_config('a.x', NULL, $1)", &SetTouch{Ops: []SetOp{{Name: "a.x"}}}},
	} {
		v := ClassifyText(tc.sql, sqlscan.MaybeInteresting(tc.sql))
		require.Equal(t, tc.want, v.Set, tc.sql)
	}
	require.Equal(t, PinRole, ClassifyText("SELECT set_config('role', NULL, false)", true).Pin)
}
