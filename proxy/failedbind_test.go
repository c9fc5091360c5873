package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEndsTransaction: the statements PostgreSQL runs in a failed transaction, told by
// their first word in any case; nothing else, and no word that only starts like one.
func TestEndsTransaction(t *testing.T) {
	for sql, want := range map[string]bool{
		"COMMIT": true, "  commit;": true, "/* c */ End": true, "ROLLBACK TO SAVEPOINT s": true,
		"abort": true, "PREPARE TRANSACTION 'x'": true, "Rollback": true,
		"select 1": false, "committed": false, "ending": false, "": false, "'commit'": false,
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1": false,
	} {
		require.Equal(t, want, endsTransaction(sql), "%q", sql)
	}
}
