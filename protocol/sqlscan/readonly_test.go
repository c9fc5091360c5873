package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadOnly(t *testing.T) {
	for _, tc := range []struct {
		sql string
		ro  bool
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;", true},
		{"select abalance from pgbench_accounts where aid = $1", true},
		{"  /* c */ SELECT 1", true},
		{"SELECT count(*), max(x) FROM t WHERE y IN (SELECT z FROM u)", true},
		{"SELECT pg_catalog.lower(name) FROM t", true},
		{"SELECT x::numeric(10,2), now() FROM t", true},
		{"TABLE t", true},
		{"VALUES (1), (2)", true},
		{"SHOW search_path", true},
		{"WITH a AS (SELECT 1) SELECT * FROM a", true},
		{"SELECT 'insert into t' AS s", true},
		{"SELECT 1;;", true},
		{"SELECT * FROM t FOR UPDATE", false},
		{"SELECT * FROM t FOR SHARE SKIP LOCKED", false},
		{"SELECT * INTO t2 FROM t", false},
		{"SELECT nextval('s')", false},
		{"SELECT f(1)", false},
		{"SELECT public.lower(x) FROM t", false},
		{`SELECT "lower"(x) FROM t`, false},
		{"SELECT pg_advisory_lock(1)", false},
		{"SELECT set_config('a.b', '1', false)", false},
		{"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", false},
		{"SELECT 1; SELECT 2", true},
		{"SELECT 1; SHOW x; TABLE t", true},
		{";", false},
		{"SELECT 1; INSERT INTO t VALUES (1)", false},
		{"INSERT INTO t VALUES (1)", false},
		{"UPDATE t SET x = 1", false},
		{"BEGIN", false},
		{"EXPLAIN ANALYZE DELETE FROM t", false},
		{"SHOW x; SET y = 1", false},
		{"", false},
	} {
		require.Equal(t, tc.ro, ReadOnly(tc.sql), tc.sql)
	}
}

func TestBeginAccess(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		begin  bool
		access Access
	}{
		{"BEGIN", true, AccessUnsaid},
		{"begin read only", true, AccessReadOnly},
		{"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1", true, AccessReadOnly},
		{"START TRANSACTION READ ONLY", true, AccessReadOnly},
		{"BEGIN TRANSACTION READ WRITE", true, AccessReadWrite},
		{"BEGIN ISOLATION LEVEL READ COMMITTED", true, AccessUnsaid},
		{"BEGIN; SET TRANSACTION READ ONLY", true, AccessUnsaid},
		{"SELECT 1", false, AccessUnsaid},
		{"START something", false, AccessUnsaid},
	} {
		begin, access := BeginAccess(tc.sql)
		require.Equal(t, tc.begin, begin, tc.sql)
		require.Equal(t, tc.access, access, tc.sql)
	}
}

func FuzzReadOnly(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT f(x) FOR UPDATE", "BEGIN READ ONLY", "WITH a AS (SELECT 1) SELECT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		_ = ReadOnly(sql)
		_, _ = BeginAccess(sql)
		_ = PrimaryOnly(sql)
	})
}
