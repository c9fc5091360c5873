package sticky

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// exchange sends one request on conn, a simple Query of sql or, with the prefix "x:",
// its Parse, Bind, Describe, Execute and Sync, and returns its answers (answers); the
// values of ParameterStatus messages go to reported.
func exchange(t testing.TB, conn *pgx.Conn, sql string, reported map[string]string) []string {
	t.Helper()
	pc := conn.PgConn()
	require.NoError(t, pc.Conn().SetDeadline(time.Now().Add(opTimeout)))
	defer func() { _ = pc.Conn().SetDeadline(time.Time{}) }()
	fe := pc.Frontend()
	if q, ok := strings.CutPrefix(sql, "x:"); ok {
		fe.Send(&pgproto3.Parse{Query: q})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Describe{ObjectType: 'P'})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
	} else {
		fe.Send(&pgproto3.Query{String: sql})
	}
	require.NoError(t, fe.Flush())
	return answers(t, fe, 1, reported)
}

// sameAnswers sends each request of seq, then SELECT 1, to direct and to viaMux
// (exchange) and requires the same answers; whenever the one server is free, other runs
// disturb on it first, so that each request of viaMux's gets its settings replayed.
func sameAnswers(t testing.TB, direct, viaMux, other *pgx.Conn, disturb string, seq []string,
	directReported, muxReported map[string]string) {
	t.Helper()
	idle := true
	for i, sql := range append(seq, "SELECT 1") {
		if idle { // the one server is free: the other client changes its settings
			_, err := other.Exec(ctxT(t), disturb)
			require.NoError(t, err)
		}
		want := exchange(t, direct, sql, directReported)
		got := exchange(t, viaMux, sql, muxReported)
		require.Equal(t, want, got, "%q step %d: %q", seq, i, sql)
		idle = got[len(got)-1] == "Z I"
	}
}

// TestRefusedSetAfterResetAsPostgres: a client that gave settings at startup (options
// and startup parameters) resets them and then sets one to a value the server refuses,
// in and out of a transaction block, by simple Query and the extended protocol, while
// another client on the one server changes the settings there between its requests (so
// each of its requests first gets its settings replayed on the server). Every request's
// answers must be PostgreSQL's: the error on the client's own statement, with its fields,
// the same transaction status in each ReadyForQuery, the same ParameterStatus, and no
// error where PostgreSQL has none.
func TestRefusedSetAfterResetAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "refusedset")
	m.pg.ExecDB(t, db, "CREATE SCHEMA s1; CREATE SCHEMA s2")
	params := map[string]string{
		"options":          `-c search_path=s1,public -c DateStyle=Postgres,\ MDY -c statement_timeout=7s`,
		"application_name": "refapp",
		"TimeZone":         "Asia/Tokyo",
	}
	viaMux, direct := muxAndDirect(t, m, db, params)
	muxReported, directReported := map[string]string{}, map[string]string{}
	other := muxtest.Connect(t, m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
	// search_path by its schemas: after a reset inside a transaction block, pgmux gives
	// the list back by a SET, which writes "s1,public" as "s1, public" (link.setStart).
	const check = "SELECT current_schemas(false), current_setting('DateStyle'), " +
		"current_setting('statement_timeout'), current_setting('application_name'), current_setting('TimeZone')"
	for _, seq := range [][]string{
		{"RESET search_path", "SET search_path = '\"'", "RESET DateStyle", "SET DateStyle = 'bogus'", check},
		{"RESET ALL", "SET statement_timeout = 'abc'", "SET TimeZone = 'Nowhere/Land'", check},
		{"RESET application_name", "SET application_name = 'x'", "RESET application_name", check},
		{"BEGIN", "RESET DateStyle", "SET DateStyle = 'bogus'", check, "ROLLBACK", check},
		{"BEGIN", "RESET ALL", check, "SET statement_timeout = 'abc'", check, "COMMIT", check},
		{"BEGIN", "SET TimeZone TO DEFAULT", check, "SET TimeZone = 'Nowhere/Land'", "ROLLBACK", check},
		{"BEGIN", "RESET statement_timeout; SET statement_timeout = 'abc'", check, "ROLLBACK", check},
		{"BEGIN; RESET DateStyle", "SET DateStyle = 'bogus'; SELECT 1", "COMMIT", check},
		{"x:RESET DateStyle", "x:SET DateStyle = 'bogus'", "x:" + check},
		{"BEGIN", "x:RESET DateStyle", "x:" + check, "x:SET DateStyle = 'bogus'", "x:" + check, "ROLLBACK", check},
		{"BEGIN", "x:RESET ALL", "x:" + check, "x:SET statement_timeout = 'abc'", "x:SELECT 1", "ROLLBACK", check},
		{"BEGIN", "x:RESET search_path", "x:SET search_path = s2", "COMMIT", check, "RESET search_path", check},
		{"SET DateStyle = ISO", "BEGIN", "x:RESET DateStyle", "x:SET DateStyle = 'bogus'", "ROLLBACK", check},
		{"SET TimeZone = 'UTC'", "BEGIN", "x:RESET TimeZone", "x:" + check, "COMMIT", check},
		{"SET statement_timeout = '1min'", "BEGIN", "RESET statement_timeout", "SAVEPOINT a",
			"SET statement_timeout = 'abc'", "ROLLBACK TO a", check, "COMMIT", check},
	} {
		sameAnswers(t, direct, viaMux, other, "SET DateStyle = 'SQL, DMY'; SET search_path = pg_catalog; SET TimeZone = 'UTC'",
			seq, directReported, muxReported)
		// A ParameterStatus after an extended-protocol reset comes after its
		// ReadyForQuery (the startup value is set again behind the Sync), by the end of
		// the client's next request.
		require.Equal(t, directReported, muxReported, "%q: ParameterStatus", seq)
	}
}

// TestResetInTransactionBlockAsPostgres: after a reset of a startup value sent with the
// extended protocol inside a transaction block, pgmux sets the startup value again
// behind the Sync. That re-set used to be a SELECT reading pg_settings: where the role
// may not read the view it failed, which aborted the client's transaction, and the
// client's next statement got 25P02 where PostgreSQL runs it; and its snapshot made
// PostgreSQL refuse a later SET TRANSACTION ISOLATION LEVEL or READ WRITE (25001), which
// PostgreSQL takes after a RESET. The client must see what PostgreSQL sends.
func TestResetInTransactionBlockAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "resettx")
	m.pg.ExecDB(t, db, "CREATE SCHEMA s1")
	su := m.pg.Connect(t, pgtest.SuperUser, "", db)
	_, err := su.Exec(ctxT(t), "REVOKE SELECT ON pg_catalog.pg_settings FROM PUBLIC")
	require.NoError(t, err)
	params := map[string]string{"options": `-c DateStyle=Postgres,\ MDY -c search_path=s1,public -c statement_timeout=7s`}
	viaMux, direct := muxAndDirect(t, m, db, params)
	muxReported, directReported := map[string]string{}, map[string]string{}
	const check = "SELECT current_setting('DateStyle'), current_schemas(false), current_setting('statement_timeout')"
	for _, seq := range [][]string{
		{"SET DateStyle = ISO", "BEGIN", "x:RESET DateStyle", "SELECT 1", "x:" + check, "COMMIT", check},
		{"SET statement_timeout = '1min'", "BEGIN", "x:RESET statement_timeout", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
			check, "COMMIT", check},
		{"SET search_path = pg_catalog", "BEGIN READ ONLY", "x:RESET search_path", "SET TRANSACTION READ WRITE",
			"SHOW transaction_read_only", check, "ROLLBACK", check},
		{"SET DateStyle = ISO; SET statement_timeout = '1min'", "BEGIN", "x:RESET ALL",
			"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", check, "COMMIT", check},
		// Where the reset may not have taken effect, the re-set still is the SELECT.
		{"SET DateStyle = ISO", "BEGIN", "x:RESET DateStyle", "x:ROLLBACK", check},
		{"SET DateStyle = ISO", "x:RESET DateStyle", check},
	} {
		for i, sql := range append(seq, "SELECT 1") {
			want := exchange(t, direct, sql, directReported)
			got := exchange(t, viaMux, sql, muxReported)
			require.Equal(t, want, got, "%q step %d: %q", seq, i, sql)
		}
		require.Equal(t, directReported, muxReported, "%q: ParameterStatus", seq)
	}
}
