package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBeginModes(t *testing.T) {
	for _, tc := range []struct {
		sql, replay string // replay "": not one BEGIN pgmux reads whole
		access      Access
	}{
		{"BEGIN", "BEGIN", AccessUnsaid},
		{"begin read only;", "BEGIN READ ONLY", AccessReadOnly},
		{"START TRANSACTION READ ONLY", "BEGIN READ ONLY", AccessReadOnly},
		{"BEGIN WORK READ ONLY /* c */ ; -- d", "BEGIN READ ONLY", AccessReadOnly},
		{"begin isolation level serializable read only deferrable", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", AccessReadOnly},
		{"BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, NOT DEFERRABLE",
			"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY NOT DEFERRABLE", AccessReadOnly},
		{"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE READ ONLY", "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", AccessReadOnly},
		{"START TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", "BEGIN ISOLATION LEVEL READ UNCOMMITTED", AccessUnsaid},
		{"BEGIN READ ONLY; SELECT 1", "", 0},
		{"BEGIN READ ONLY; ;", "", 0},
		{"BEGIN ISOLATION LEVEL SNAPSHOT", "", 0},
		{"BEGIN READ", "", 0},
		{"BEGIN NOT", "", 0},
		{"START READ ONLY", "", 0},
		{"SELECT 1", "", 0},
		{"COMMIT", "", 0},
	} {
		m, ok := BeginModes(tc.sql)
		require.Equal(t, tc.replay != "", ok, tc.sql)
		if !ok {
			require.Zero(t, m, tc.sql)
			continue
		}
		require.NotZero(t, m, tc.sql)
		require.Equal(t, tc.replay, m.SQL(), tc.sql)
		require.Equal(t, tc.access, m.Access(), tc.sql)
		again, ok := BeginModes(m.SQL())
		require.True(t, ok)
		require.Equal(t, m, again, "the replay reads back the same")
	}
}

func TestBeforeSnapshot(t *testing.T) {
	for _, tc := range []struct {
		sql, replay string
		ok          bool
	}{
		{"SET LOCAL work_mem = '8MB'", "SET LOCAL work_mem = '8MB'", true},
		{"show work_mem", "", true},
		{"SHOW ALL;", "", true},
		{"set statement_timeout to 5000; SHOW statement_timeout; /* c */ SET LOCAL lock_timeout = '1s';",
			"set statement_timeout to 5000; SET LOCAL lock_timeout = '1s'", true},
		{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", true},
		{"SET SESSION search_path = a, b", "SET SESSION search_path = a, b", true},
		{"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", "", false},
		{"SET work_mem TO DEFAULT", "SET work_mem TO DEFAULT", true},
		{"RESET work_mem; show work_mem", "RESET work_mem", true},
		{"SAVEPOINT a; SET LOCAL work_mem = '1MB'; ROLLBACK TO a; RELEASE SAVEPOINT a",
			"SAVEPOINT a; SET LOCAL work_mem = '1MB'; ROLLBACK TO a; RELEASE SAVEPOINT a", true},
		{`rollback work to savepoint "A"; release b`, `rollback work to savepoint "A"; release b`, true},
		{"ROLLBACK", "", false},
		{"ROLLBACK PREPARED 'x'", "", false},
		{"ROLLBACK TO", "", false},
		{"RELEASE a b", "", false},
		{"SAVEPOINT a; SELECT 1", "", false},
		{"SET ROLE admin", "", false},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
			"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", true},
		{"SET CONSTRAINTS ALL DEFERRED", "SET CONSTRAINTS ALL DEFERRED", true},
		{"set constraints a, b immediate; SHOW work_mem", "set constraints a, b immediate", true},
		{"SET CONSTRAINTS ALL DEFERRED; SELECT 1", "", false},
		{"SHOW work_mem; SELECT 1", "", false},
		{"SELECT set_config('work_mem', '8MB', true)", "", false},
		{"DO $$BEGIN SET LOCAL work_mem = '8MB'; END$$", "", false},
		{"", "", true},
		{";", "", true},
		{"/* nothing */ ;", "", true},
	} {
		replay, ok := BeforeSnapshot(tc.sql)
		require.Equal(t, tc.ok, ok, tc.sql)
		require.Equal(t, tc.replay, replay, tc.sql)
	}
}
