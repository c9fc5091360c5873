package sticky

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestResetListAsPostgres: a client gave search_path at startup in text of its own
// ("s1,public", or an empty list) and resets it inside a transaction block, where pgmux
// sets the startup value again by a SET (no snapshot, so the transaction may still
// switch to SERIALIZABLE or READ WRITE), which writes the list anew ("s1, public", '""').
// After the block the client must see its own text again, as on PostgreSQL, also on a
// link that goes on (a pinned client, requests pipelined behind the COMMIT): pgmux used
// to leave SET's text there until the next link. An empty list used to get a DO block,
// whose snapshot made PostgreSQL refuse a later SET TRANSACTION ISOLATION LEVEL (25001).
func TestResetListAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "resetlist")
	m.pg.ExecDB(t, db, "CREATE SCHEMA s1")
	const list, empty = `-c search_path=s1,public`, `-c search_path=`
	// Steps: a simple Query, "x:" an extended-protocol one (exchange), or Queries
	// pipelined in one write, split at "|".
	for _, c := range []struct {
		name, opts string
		seq        []string
	}{
		{"pipelined", list, []string{"SET search_path = pg_catalog", "BEGIN", "x:RESET search_path", "COMMIT|SHOW search_path"}},
		{"pipelined reset all", list, []string{"BEGIN", "x:RESET ALL", "x:SHOW DateStyle", "COMMIT|SHOW search_path|SELECT 1"}},
		{"pinned", list, []string{"CREATE TEMP TABLE tt(i int)", "BEGIN", "x:RESET search_path", "COMMIT", "SHOW search_path",
			"SET search_path = pg_catalog", "BEGIN", "RESET search_path", "COMMIT", "SHOW search_path"}},
		{"pinned own text kept", list, []string{"CREATE TEMP TABLE tt(i int)", "SET search_path = s1, public", "BEGIN",
			"x:RESET search_path", "ROLLBACK", "SHOW search_path"}},
		{"empty extended", empty, []string{"SET search_path = pg_catalog", "BEGIN", "x:RESET search_path",
			"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "COMMIT", "SHOW search_path"}},
		{"empty simple", empty, []string{"SET search_path = pg_catalog", "BEGIN", "RESET search_path",
			"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "COMMIT|SHOW search_path"}},
		{"empty reset all", empty, []string{"BEGIN READ ONLY", "x:RESET ALL", "SET TRANSACTION READ WRITE",
			"COMMIT|SHOW search_path"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			viaMux, direct := muxAndDirect(t, m, db, map[string]string{"options": c.opts})
			muxReported, directReported := map[string]string{}, map[string]string{}
			for i, step := range append(c.seq, "SHOW search_path") {
				var want, got []string
				if qs := strings.Split(step, "|"); len(qs) > 1 {
					want, _ = pipelined(t, direct, qs...)
					got, _ = pipelined(t, viaMux, qs...)
				} else {
					want = exchange(t, direct, step, directReported)
					got = exchange(t, viaMux, step, muxReported)
				}
				require.Equal(t, want, got, "step %d: %q", i, step)
			}
			require.Equal(t, directReported, muxReported, "ParameterStatus")
		})
	}
}

// TestResetListInBlock documents what pgmux cannot give as PostgreSQL does: inside the
// transaction block, between the reset and the block's end, SHOW gives the list as SET
// wrote it. PostgreSQL's RESET gives back the startup text itself; the only statements
// that take no snapshot (which the block must keep free to switch isolation or access
// mode) and set a value are SET and RESET, and SET writes a list item by item, quoted by
// quote_ident and joined by ", ": no SET writes "s1,public" or an empty list. set_config
// would, but it runs in a SELECT, and a SELECT takes the snapshot.
func TestResetListInBlock(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "resetlistblock")
	m.pg.ExecDB(t, db, "CREATE SCHEMA s1")
	for opts, inBlock := range map[string]string{`-c search_path=s1,public`: "s1, public", `-c search_path=`: `""`} {
		viaMux, direct := muxAndDirect(t, m, db, map[string]string{"options": opts})
		start := strings.TrimPrefix(opts, "-c search_path=")
		seen := func(conn *pgx.Conn) []string {
			var out []string
			for _, step := range []string{"BEGIN", "x:RESET search_path", "x:SELECT current_setting('search_path')", "COMMIT", "SHOW search_path"} {
				out = append(out, exchange(t, conn, step, map[string]string{})...)
			}
			return out
		}
		want := seen(direct)
		require.Contains(t, want, "D "+start)
		got := seen(viaMux)
		require.Equal(t, strings.Join(want, "\n"), strings.Replace(strings.Join(got, "\n"), "D "+inBlock+"\n", "D "+start+"\n", 1),
			"%s: only the value inside the block differs", opts)
		require.Contains(t, got, "D "+inBlock, opts)
	}
}
