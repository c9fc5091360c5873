package sticky

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestStartupParamsAsPostgres: the reported parameters a client gives at startup, as
// parameters of their own or in options, are reported at login in PostgreSQL's spelling
// of them (TimeZone=utc as "UTC", europe/paris as "Europe/Paris", IntervalStyle=POSTGRES
// as "postgres", client_encoding=utf8 as "UTF8" but UNICODE as itself, a boolean as on
// or off, an application_name's non-ASCII bytes as PostgreSQL cleans them), and the
// client's first requests see the same values and bring no ParameterStatus, as on a
// direct connection.
func TestStartupParamsAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "startparams")
	type tc struct{ name, key, value, report string }
	cases := []tc{
		{"tz utc", "TimeZone", "utc", "TimeZone"},
		{"tz paris", "TimeZone", "europe/paris", "TimeZone"},
		{"tz offset", "TimeZone", "+3", "TimeZone"},
		{"tz posix", "TimeZone", "est5edt", "TimeZone"},
		{"tz gmt", "timezone", "gmt", "TimeZone"},
		{"tz options", "options", "-c timezone=america/new_york", "TimeZone"},
		{"intervalstyle", "IntervalStyle", "POSTGRES", "IntervalStyle"},
		{"intervalstyle options", "options", "-c intervalstyle=Sql_Standard", "IntervalStyle"},
		{"encoding utf8", "client_encoding", "utf8", "client_encoding"},
		{"encoding UNICODE", "client_encoding", "UNICODE", "client_encoding"},
		{"encoding unicode", "client_encoding", "unicode", "client_encoding"},
		{"encoding latin1", "client_encoding", "iso-8859-1", "client_encoding"},
		{"encoding win1252", "options", "-c client_encoding=win1252", "client_encoding"},
		{"app non-ascii", "application_name", "café", "application_name"},
		{"app long", "application_name", strings.Repeat("a", 80), "application_name"},
		{"scs yes", "standard_conforming_strings", "yes", "standard_conforming_strings"},
		{"scs options", "options", "-c standard_conforming_strings=0", "standard_conforming_strings"},
		{"read only", "default_transaction_read_only", "true", "default_transaction_read_only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := map[string]string{c.key: c.value}
			viaMux, direct := muxAndDirect(t, m, db, params)
			want := direct.PgConn().ParameterStatus(c.report)
			assert.Equal(t, want, viaMux.PgConn().ParameterStatus(c.report), "at login")
			wantSeen, wantReported := pipelined(t, direct, "SHOW "+c.report, "SELECT 1")
			gotSeen, gotReported := pipelined(t, viaMux, "SHOW "+c.report, "SELECT 1")
			require.Equal(t, wantSeen, gotSeen)
			require.Equal(t, wantReported, gotReported, "ParameterStatus in the first requests")
		})
	}
}

// TestStartupSpellingKept: the server is asked how it spells a startup value (or whether
// it takes one: statement_timeout, extra_float_digits) once per pool; a later login that sends the same value is answered from what was kept, without
// a server: here the pool's one server is held in another client's transaction, and the
// login must not wait for it.
func TestStartupSpellingKept(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, waitTimeout: 5})
	db := m.pg.NewDatabase(t, "spellkept")
	params := map[string]string{"TimeZone": "europe/paris", "options": "-c intervalstyle=ISO_8601 -c statement_timeout=5s",
		"extra_float_digits": "2"}
	first := muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeSimpleProtocol, opTimeout)
	require.Equal(t, "Europe/Paris", first.PgConn().ParameterStatus("TimeZone"))
	require.NoError(t, first.Close(ctxT(t)))

	holdServer(t, m, db)

	later := muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeSimpleProtocol, 3*time.Second)
	assert.Equal(t, "Europe/Paris", later.PgConn().ParameterStatus("TimeZone"))
	assert.Equal(t, "iso_8601", later.PgConn().ParameterStatus("IntervalStyle"))
}

// holdServer keeps a server of db's pool in a transaction block until the test ends: a
// login after it that asked a server would wait.
func holdServer(t *testing.T, m *mux, db string) {
	t.Helper()
	holder := m.connect(t, db)
	_, err := holder.Exec(ctxT(t), "BEGIN")
	require.NoError(t, err)
	_, err = holder.Exec(ctxT(t), "SELECT 1")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = holder.Exec(context.Background(), "ROLLBACK") })
}

// TestSettingsAfterOtherEncoding: a server comes to a client with another client's
// client_encoding still set. The client's settings are sent to it as text in the
// client's encoding, so the server must have that encoding before it reads them: a
// non-ASCII startup value (search_path=schéma) read as LATIN1 became "schÃ©ma".
func TestSettingsAfterOtherEncoding(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "otherenc")
	latin := muxtest.Connect(t, withParams(t, m.url(db), map[string]string{"client_encoding": "LATIN1"}),
		pgx.QueryExecModeSimpleProtocol, opTimeout)
	viaMux, direct := muxAndDirect(t, m, db, map[string]string{"options": `-c search_path=schéma,public`})
	for i := 0; i < 2; i++ {
		_, err := latin.Exec(ctxT(t), "SELECT 1") // the one server gets LATIN1 again
		require.NoError(t, err)
		const q = "SELECT current_setting('search_path'), current_setting('client_encoding')"
		require.Equal(t, exchange(t, direct, q, map[string]string{}), exchange(t, viaMux, q, map[string]string{}))
	}
}
