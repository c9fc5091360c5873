package sticky

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPinnedResetInTransactionAsPostgres: a pinned client (here by a shared advisory lock, which the direct session holds too)
// sends a statement that may release its session state (RESET ALL, and the unlock
// itself) inside a transaction block, then SET TRANSACTION ISOLATION LEVEL, which
// PostgreSQL takes as long as no statement of the transaction took a snapshot. pgmux
// followed the release with its state check, a SELECT, in the client's transaction, and
// the SET failed with 25001 there. The check now goes out once the block has ended, and
// the client is unpinned after the request that ends it.
func TestPinnedResetInTransactionAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "resetintx")
	adm := m.admin(t)
	cases := map[string][]string{
		"RESET ALL": {"SELECT pg_advisory_lock_shared(1)", "BEGIN", "RESET ALL",
			"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SHOW transaction_isolation", "COMMIT",
			"SELECT pg_advisory_unlock_shared(1)"},
		"BEGIN; RESET ALL in one Query": {"SELECT pg_advisory_lock_shared(2)", "BEGIN; RESET ALL",
			"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SHOW transaction_isolation", "ROLLBACK",
			"SELECT pg_advisory_unlock_shared(2)"},
		"unlock in the block, then COMMIT": {"SELECT pg_advisory_lock_shared(4)", "BEGIN",
			"SELECT pg_advisory_unlock_shared(4)", "COMMIT"},
		"DISCARD SEQUENCES": {"SELECT pg_advisory_lock_shared(3)", "START TRANSACTION", "DISCARD SEQUENCES",
			"SET TRANSACTION READ ONLY", "SHOW transaction_read_only", "COMMIT", "SELECT pg_advisory_unlock_shared(3)"},
	}
	for name, qs := range cases {
		t.Run(name, func(t *testing.T) {
			viaMux, direct := muxAndDirect(t, m, db, nil)
			for _, q := range qs {
				want := exchange(t, direct, q, map[string]string{})
				require.Equal(t, want, exchange(t, viaMux, q, map[string]string{}), q)
			}
			// The check went out once the block ended: the client is unpinned.
			require.Eventually(t, func() bool { return pinReasonOf(t, adm, db, viaMux) == "" }, 5*time.Second,
				10*time.Millisecond, "still pinned")
		})
	}
}
