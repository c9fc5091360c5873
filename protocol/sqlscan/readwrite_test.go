package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrimaryOnly(t *testing.T) {
	for _, tc := range []struct {
		sql string
		sw  bool
	}{
		{"SELECT 1", false},
		{"SELECT 1; INSERT INTO t VALUES (1)", false},
		{"BEGIN", false},
		{"BEGIN READ ONLY; SELECT 1; COMMIT", false},
		{"BEGIN ISOLATION LEVEL READ COMMITTED", false},
		{"SELECT 1; BEGIN READ WRITE; INSERT INTO t VALUES (1); COMMIT", true},
		{"SHOW x; START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", true},
		{"begin transaction read write", true},
		{"BEGIN; SET TRANSACTION READ WRITE; INSERT INTO t VALUES (1)", true},
		// Serializable: a standby refuses it (0A000), the primary takes it.
		{"BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", true},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", true},
		{"START TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE, DEFERRABLE", true},
		{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, DEFERRABLE", false},
		{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", false},
		{"SET transaction_isolation = serializable", true},
		{"SET LOCAL transaction_isolation TO 'SERIALIZABLE'", true},
		{"SET transaction_isolation TO DEFAULT", true},
		{"RESET transaction_isolation", true},
		{"SET LOCAL transaction_isolation TO 'repeatable read'", false},
		{"SET transaction_isolation = 'read committed'", false},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", false},
		{"SET default_transaction_isolation = serializable", false},
		{"SELECT 'isolation level serializable'", false},
		{"SET TRANSACTION READ WRITE", true},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; INSERT INTO t VALUES (1)", true},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", false},
		{"SET default_transaction_read_only = off; COMMIT; INSERT INTO t VALUES (1)", true},
		{"SET default_transaction_read_only TO DEFAULT", true},
		{"SET default_transaction_read_only FROM CURRENT", true},
		{"SET SESSION default_transaction_read_only = 'false'", true},
		{`SET "Default_Transaction_Read_Only" = off`, true},
		{"SET default_transaction_read_only = on", false},
		{"SET default_transaction_read_only TO 'on'", false},
		{"set default_transaction_read_only = true", false},
		{"SET transaction_read_only = off; INSERT INTO t VALUES (1)", true},
		{"SET LOCAL transaction_read_only TO false", true},
		{"SET LOCAL transaction_read_only TO on", false},
		{"SET search_path = public; SET statement_timeout = 0", false},
		{"RESET default_transaction_read_only; INSERT INTO t VALUES (1)", true},
		{"RESET transaction_read_only", true},
		{"RESET search_path", false},
		{"RESET ALL", true},
		{"DISCARD ALL", true},
		{"DISCARD PLANS", false},
		{"SELECT set_config('default_transaction_read_only', 'off', false); COMMIT; INSERT INTO t VALUES (1)", true},
		{"SELECT pg_catalog.set_config('transaction_read_only', 'off', true)", true},
		{"SELECT set_config($1, $2, false)", true},
		{"SELECT set_config('search_path', 'x', false)", false},
		{"SELECT 'set default_transaction_read_only = off', 'read write'", false},
		{"DO $$BEGIN SET default_transaction_read_only = off; END$$; INSERT INTO t VALUES (1)", true},
		{"DO $$BEGIN PERFORM set_config('transaction_read_only', 'off', true); END$$", true},
		{"DO $$BEGIN EXECUTE 'RESET ALL'; END$$", true},
		{"DO $$BEGIN EXECUTE q; END$$", true},
		{"DO $$BEGIN PERFORM 1; END$$", false},
		{"", false},
	} {
		require.Equal(t, tc.sw, PrimaryOnly(tc.sql), tc.sql)
	}
}
