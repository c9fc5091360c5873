package sticky

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResetOfRefusedStartupValue documents a difference pgmux cannot remove. A client
// gave default_text_search_config at startup, and the configuration is dropped since.
// On PostgreSQL its RESET still succeeds and gives back the startup text: RESET restores
// the value the session saved at login, with its checked form, and checks nothing
// again. A pooled server's saved value is its own login's, never the client's, so pgmux
// sets the startup value again after the reset; and every statement that gives a session
// a value (SET, set_config, a function's SET clause) runs the parameter's check, which
// refuses a configuration, tablespace or access method that no longer exists. Inside a
// transaction block the re-set must be a SET (no snapshot), whose refusal aborts the
// client's transaction; a DO block with an exception handler would leave the server's
// default rather than the client's text, and take the snapshot. So where PostgreSQL
// succeeds, a simple Query with the reset fails with PostgreSQL's error for the value
// (22023: the re-set is in the Query), and after an extended-protocol reset (re-set
// behind the Sync) the client's next statement gets 25P02, the refusal being logged.
// If pgmux ever matches PostgreSQL here, this test fails: turn it into a comparison.
func TestResetOfRefusedStartupValue(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "resetrefused")
	m.pg.ExecDB(t, db, "CREATE TEXT SEARCH CONFIGURATION public.gone (COPY = english)")
	viaMux, direct := muxAndDirect(t, m, db, map[string]string{"options": "-c default_text_search_config=public.gone"})
	const show = "SHOW default_text_search_config"
	require.Equal(t, exchange(t, direct, show, map[string]string{}), exchange(t, viaMux, show, map[string]string{}))
	m.pg.ExecDB(t, db, "DROP TEXT SEARCH CONFIGURATION public.gone")

	run := func(seq []string) (direct_, mux []string) {
		for _, sql := range seq {
			direct_ = append(direct_, exchange(t, direct, sql, map[string]string{})...)
			mux = append(mux, exchange(t, viaMux, sql, map[string]string{})...)
		}
		return direct_, mux
	}
	const refused = `E ERROR 22023 call_string_check_hook: invalid value for parameter "default_text_search_config": "public.gone"`
	const aborted = "E ERROR 25P02 exec_parse_message: current transaction is aborted"
	for _, c := range []struct {
		seq  []string
		fail string // what pgmux answers in place of PostgreSQL's success
	}{
		{[]string{"BEGIN", "x:RESET default_text_search_config", "x:" + show, "COMMIT"}, aborted},
		{[]string{"BEGIN", "x:RESET ALL", "x:" + show, "COMMIT"}, aborted},
		{[]string{"BEGIN", "RESET default_text_search_config", show, "COMMIT"}, refused},
		{[]string{"BEGIN", "RESET ALL", show, "COMMIT"}, refused},
	} {
		want, got := run(c.seq)
		require.NotContains(t, strings.Join(want, "\n"), "E ERROR", "%q: PostgreSQL", c.seq)
		require.Contains(t, want, "D public.gone", "%q: PostgreSQL gives the startup text back", c.seq)
		require.Contains(t, strings.Join(got, "\n"), c.fail, "%q: pgmux's re-set is refused", c.seq)
		require.Contains(t, got, "C ROLLBACK", "%q: the client's transaction is lost", c.seq)
	}
}
