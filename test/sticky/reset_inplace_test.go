package sticky

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResetThenShowInOneQuery: a RESET of a startup value followed by more statements in
// the same Query: those statements see the startup value, as on a direct connection, and
// the client sees exactly what PostgreSQL sends (no extra CommandComplete, error
// positions in the client's text, the same ParameterStatus), in both pool modes; and a
// switch to read-write after such a reset is allowed, as on PostgreSQL.
func TestResetThenShowInOneQuery(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 2, extra: map[string]string{"pool_mode": mode}})
			db := m.pg.NewDatabase(t, "resetshow")
			params := map[string]string{
				"options":  "-c DateStyle=Postgres,MDY -c myapp.tenant=acme",
				"TimeZone": "Asia/Tokyo",
			}
			viaMux, direct := muxAndDirect(t, m, db, params)
			for i, q := range []string{
				"SET DateStyle = ISO",
				"RESET DateStyle; SHOW DateStyle",
				"SET DateStyle = ISO; SET TimeZone = 'UTC'; SET myapp.tenant = 'x'",
				"RESET ALL; SELECT current_setting('DateStyle'), current_setting('TimeZone'), current_setting('myapp.tenant')",
				"SET TimeZone = 'UTC'",
				"BEGIN; SET TimeZone TO DEFAULT; SHOW TimeZone; COMMIT",
				"SET DateStyle = 'SQL'; RESET DateStyle; SELECT nosuchcolumn",
				"SHOW DateStyle",
				"SET DateStyle = 'German'; RESET DateStyle ; DO $$BEGIN NULL; END$$; SHOW DateStyle",
				"RESET DateStyle; SELECT 1/0",
				"SET DateStyle = ISO; RESET DateStyle; RESET myapp.tenant; SHOW myapp.tenant; SHOW DateStyle",
				"RESET work_mem; SHOW work_mem",
				// The startup value set again takes no snapshot, as RESET takes none: the
				// transaction may still become read-write after it.
				"SET DateStyle = ISO; SET myapp.tenant = 'y'",
				"BEGIN READ ONLY; RESET DateStyle; RESET myapp.tenant; SET TRANSACTION READ WRITE; SHOW transaction_read_only; COMMIT",
				"SET TimeZone = 'UTC'",
				"BEGIN READ ONLY; SET TimeZone TO DEFAULT; SET TRANSACTION READ WRITE; COMMIT",
			} {
				want, wantReported := pipelined(t, direct, q)
				got, gotReported := pipelined(t, viaMux, q)
				require.Equal(t, want, got, "query %d: %q", i, q)
				for name, v := range wantReported {
					require.Equal(t, v, gotReported[name], "query %d: %q: ParameterStatus %s", i, q, name)
				}
				require.Equal(t, show(t, direct, "DateStyle"), show(t, viaMux, "DateStyle"), "after %q", q)
				require.Equal(t, show(t, direct, "TimeZone"), show(t, viaMux, "TimeZone"), "after %q", q)
			}
		})
	}
}
