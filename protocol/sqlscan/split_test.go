package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitAfterEnd(t *testing.T) {
	for _, tc := range []struct {
		sql, head, rest string
		ok              bool
	}{
		{"COMMIT; INSERT INTO t VALUES (1)", "COMMIT;", " INSERT INTO t VALUES (1)", true},
		{"SELECT 1; end /* ; */ ; SELECT 2; SELECT 3;", "SELECT 1; end /* ; */ ;", " SELECT 2; SELECT 3;", true},
		{"/* COMMIT; */ ROLLBACK;INSERT INTO t VALUES ('COMMIT;')", "/* COMMIT; */ ROLLBACK;", "INSERT INTO t VALUES ('COMMIT;')", true},
		{"ABORT; BEGIN; COMMIT; SELECT 1", "ABORT;", " BEGIN; COMMIT; SELECT 1", true},
		{"COMMIT AND NO CHAIN; INSERT INTO t VALUES (1)", "COMMIT AND NO CHAIN;", " INSERT INTO t VALUES (1)", true},
		{"COMMIT AND CHAIN; INSERT INTO t VALUES (1)", "", "", false},
		{"COMMIT AND CHAIN; COMMIT; INSERT INTO t VALUES (1)", "COMMIT AND CHAIN; COMMIT;", " INSERT INTO t VALUES (1)", true},
		{"COMMIT", "", "", false},
		{"COMMIT;", "", "", false},
		{"COMMIT; ;", "", "", false},
		{"SELECT 1; SELECT 2", "", "", false},
		{"ROLLBACK TO SAVEPOINT a; INSERT INTO t VALUES (1)", "", "", false},
		{"COMMIT PREPARED 'x'; INSERT INTO t VALUES (1)", "", "", false},
		{"COMMIT; VACUUM t", "", "", false},
		{"COMMIT; CREATE INDEX CONCURRENTLY i ON t (x)", "", "", false},
		{"COMMIT; CALL p()", "", "", false},
		{"COMMIT; VACUUM t; SELECT 1", "COMMIT;", " VACUUM t; SELECT 1", true},
		{"COMMIT; CREATE TABLE u (x int)", "COMMIT;", " CREATE TABLE u (x int)", true},
	} {
		head, rest, ok := SplitAfterEnd(tc.sql)
		require.Equal(t, tc.ok, ok, tc.sql)
		require.Equal(t, tc.head, head, tc.sql)
		require.Equal(t, tc.rest, rest, tc.sql)
	}
}

func TestOwnTransaction(t *testing.T) {
	for _, tc := range []struct {
		sql string
		own bool
	}{
		{"VACUUM", true}, {"vacuum analyze t", true}, {"CLUSTER", true}, {"REINDEX TABLE t", true},
		{"CALL p()", true}, {"DO $$BEGIN END$$", true}, {"DISCARD ALL", true},
		{"CREATE DATABASE d", true}, {"DROP TABLESPACE s", true}, {"ALTER SYSTEM SET x = 1", true},
		{"CREATE UNIQUE INDEX CONCURRENTLY i ON t (x)", true}, {"DROP SUBSCRIPTION s", true},
		{"CREATE TABLE t (x int)", false}, {"ALTER TABLE t ADD y int", false}, {"INSERT INTO t VALUES (1)", false},
		{"SELECT 1", false}, {"DROP TABLE t", false},
	} {
		require.Equal(t, tc.own, OwnTransaction(tc.sql), tc.sql)
	}
}

func TestTxExit(t *testing.T) {
	for q, want := range map[string]bool{
		"ROLLBACK":                        true,
		"rollback work and chain":         true,
		"ROLLBACK TO SAVEPOINT s":         true,
		"rollback transaction to s":       true,
		"ABORT":                           true,
		"COMMIT":                          true,
		"commit and no chain;":            true,
		"END TRANSACTION":                 true,
		"/* c */ ;; -- x\n END":           true,
		"PREPARE TRANSACTION 'gid'":       true,
		"prepare transaction $$g$$":       true,
		"COMMIT PREPARED 'gid'":           false,
		"ROLLBACK PREPARED 'gid'":         false,
		"PREPARE transaction AS SELECT 1": false,
		"PREPARE p AS ROLLBACK":           false,
		"BEGIN":                           false,
		"SAVEPOINT s":                     false,
		"RELEASE SAVEPOINT s":             false,
		"SELECT 1":                        false,
		"\"rollback\"":                    false,
		"":                                false,
		"DEALLOCATE pgmux_stub":           false,
		"EXPLAIN ROLLBACK":                false,
		"START TRANSACTION":               false,
		"PREPARE TRANSACTION":             false,
	} {
		if got := TxExit(q); got != want {
			t.Errorf("TxExit(%q) = %v, want %v", q, got, want)
		}
	}
}
