package sticky

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestLocalDefaultAsPostgres: SET LOCAL ... TO DEFAULT (= DEFAULT, SET LOCAL TIME ZONE
// DEFAULT or LOCAL) gives, for the rest of the transaction, the session's reset value:
// on a direct connection the client's startup value (in options or a parameter of its
// own), whatever it SET since; on a server pgmux shares, the server's own default (0 for
// statement_timeout where the client logged in with 7s). After the transaction the
// session's value is back. Also SET TIME ZONE LOCAL, the session's form, and
// set_config(name, NULL, is_local), the function form of both. Each request
// goes to PostgreSQL and to pgmux, with another client changing the one server's
// settings whenever it is free, and must get the same answers and ParameterStatus.
func TestLocalDefaultAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "localdefault")
	m.pg.ExecDB(t, db, "CREATE SCHEMA s1; GRANT USAGE ON SCHEMA s1 TO PUBLIC")
	params := map[string]string{
		"options":      `-c search_path=s1,public -c DateStyle=Postgres,\ MDY -c statement_timeout=7s -c myapp.x=1`,
		"TimeZone":     "Asia/Tokyo",
		"lock_timeout": "4s",
	}
	other := muxtest.Connect(t, m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
	// search_path by its schemas: in a transaction block pgmux gives the list back by a
	// SET LOCAL, which writes "s1,public" as "s1, public" (link.setStart).
	const check = "SELECT current_schemas(false), current_setting('DateStyle'), current_setting('statement_timeout'), " +
		"current_setting('lock_timeout'), current_setting('TimeZone')"
	for _, seq := range [][]string{
		{"BEGIN", "SET LOCAL statement_timeout TO DEFAULT", "SHOW statement_timeout", check, "COMMIT", check},
		{"BEGIN; SET LOCAL statement_timeout TO DEFAULT; SHOW statement_timeout; COMMIT", check},
		{"SET statement_timeout = '3s'", "BEGIN", "SET LOCAL statement_timeout = DEFAULT", check, "COMMIT", check,
			"RESET statement_timeout", check},
		{"SET statement_timeout = '3s'", "BEGIN", "SET LOCAL statement_timeout TO DEFAULT", check, "ROLLBACK", check,
			"SET statement_timeout TO DEFAULT", check},
		{"SET LOCAL statement_timeout TO DEFAULT; SHOW statement_timeout", check},
		{"SET LOCAL statement_timeout TO DEFAULT", check},
		{"BEGIN", "SET LOCAL TIME ZONE DEFAULT", check, "COMMIT", check},
		{"BEGIN", "SET LOCAL TIME ZONE LOCAL", check, "COMMIT", check},
		{"BEGIN", "SET LOCAL search_path TO DEFAULT", check, "SET LOCAL DateStyle TO DEFAULT", check, "COMMIT", check, "SHOW search_path"},
		{"BEGIN", "SET LOCAL lock_timeout TO DEFAULT", check, "ROLLBACK", check},
		{"BEGIN", "SAVEPOINT a", "SET LOCAL statement_timeout TO DEFAULT", check, "ROLLBACK TO a", check, "COMMIT", check},
		{"BEGIN", "x:SET LOCAL statement_timeout TO DEFAULT", "x:" + check, "COMMIT", check},
		{"SET TIME ZONE LOCAL", check, "RESET ALL"},
		{"BEGIN", "SET LOCAL statement_timeout TO DEFAULT", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
			"SHOW transaction_isolation", "COMMIT"},
		{"BEGIN", "SET statement_timeout = '5s'", "SET LOCAL statement_timeout TO DEFAULT", check, "COMMIT", check},
		{"BEGIN", "SET LOCAL statement_timeout TO DEFAULT", "SET statement_timeout = '5s'", check, "COMMIT", check},
		{"BEGIN", "RESET statement_timeout", "SET LOCAL statement_timeout TO DEFAULT", check, "ROLLBACK", check},
		{"BEGIN", "SELECT 1/0", "SET LOCAL statement_timeout TO DEFAULT", "ROLLBACK", check},
		{"BEGIN; SET LOCAL statement_timeout TO DEFAULT; SET LOCAL lock_timeout = DEFAULT; " + check + "; ROLLBACK", check},
		{"BEGIN", "SET LOCAL myapp.x TO DEFAULT", "SHOW myapp.x", "COMMIT", "SHOW myapp.x"},
		{"BEGIN", "x:SET LOCAL TIME ZONE DEFAULT", "x:" + check, "COMMIT", check},
		{"x:SET LOCAL statement_timeout TO DEFAULT", check},
		// set_config(name, NULL, is_local) is the function form of SET [LOCAL] ... TO DEFAULT.
		{"BEGIN", "SELECT set_config('statement_timeout', NULL, true)", check, "COMMIT", check},
		{"SELECT set_config('statement_timeout', NULL, false)", check},
		{"SELECT set_config('TimeZone', NULL, true), current_setting('TimeZone')", check},
		{"SET statement_timeout = '3s'", "BEGIN", "SELECT set_config('statement_timeout', NULL, true); SHOW statement_timeout",
			"COMMIT", check},
		{"SET statement_timeout = '3s'", "SELECT set_config('statement_timeout', NULL, false) WHERE false; SHOW statement_timeout",
			"SELECT pg_catalog.set_config('statement_timeout', NULL, false), current_setting('lock_timeout')", check},
		{"SET TimeZone = 'UTC'", "SELECT set_config('timezone', NULL, false); SELECT no_such_column"},
		{"SET statement_timeout = '3s'", "x:SELECT 1 FROM (SELECT set_config('statement_timeout', NULL, false)) s", check},
		{"SET statement_timeout = '3s'", "BEGIN", "x:SELECT 1 FROM (SELECT set_config('statement_timeout', NULL, true)) s",
			check, "COMMIT", check},
	} {
		t.Run(strings.ReplaceAll(strings.Join(seq[:min(len(seq), 3)], "; "), check, "check"), func(t *testing.T) {
			viaMux, direct := muxAndDirect(t, m, db, params)
			muxReported, directReported := map[string]string{}, map[string]string{}
			sameAnswers(t, direct, viaMux, other, "SET DateStyle = 'SQL, DMY'; SET search_path = pg_catalog; "+
				"SET TimeZone = 'UTC'; SET statement_timeout = '9s'", seq, directReported, muxReported)
			require.Equal(t, directReported, muxReported, "%q: ParameterStatus", seq)
		})
	}
}
