package sticky

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestLoginOnlyStartupAsPostgres: a startup value of a setting only a login may set
// (set_config refuses it with 55P02 after the start) refuses the login through pgmux as
// on a direct connection when the role may not set it (log_connections, a
// superuser-backend setting, for the app role: 42501) or a boolean one does not read as
// a boolean (22023); one PostgreSQL takes logs in on both. A later login with a value
// taken before asks no server: it logs in while the pool's one server is held.
func TestLoginOnlyStartupAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, waitTimeout: 5})
	db := m.pg.NewDatabase(t, "loginonly")
	cases := []map[string]string{
		{"log_connections": "on"},
		{"log_connections": "maybe"},
		{"options": "-c log_disconnections=off"},
		{"jit_debugging_support": "on"},
		{"ignore_system_indexes": "maybe"},
		{"ignore_system_indexes": "o"},
		{"IGNORE_SYSTEM_INDEXES": "Of"},
		{"ignore_system_indexes": "TRU"},
		{"options": "-c ignore_system_indexes=2"},
		{"post_auth_delay": "0"},
	}
	sameLogins(t, m, db, cases, []map[string]string{{"ignore_system_indexes": "TRU"}, {"post_auth_delay": "0"}})
}

// sameLogins logs in at db with each of cases directly and through pgmux, and requires
// the same outcome; then, while the pool's one server is held, logs in through pgmux
// with each of kept, values taken before, which must ask no server.
func sameLogins(t *testing.T, m *mux, db string, cases, kept []map[string]string) {
	t.Helper()
	for _, params := range cases {
		t.Run(fmt.Sprint(params), func(t *testing.T) {
			want := loginOutcome(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params))
			got := loginOutcome(t, withParams(t, m.url(db), params))
			require.Equal(t, want, got)
		})
	}

	holdServer(t, m, db)
	for _, params := range kept {
		muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeSimpleProtocol, 3*time.Second)
	}
}

// TestStartupTransactionAsPostgres: a startup transaction_isolation is set in the
// login's own transaction, which PostgreSQL began with the server's configured default
// level: it refuses another level (25001) and takes that one, whatever the database's
// default_transaction_isolation; a transaction_read_only=off is refused the same way in a
// read-only default. Through pgmux the answer followed the defaults another client had
// left on the server asked (its startup default_transaction_isolation and
// default_transaction_read_only), and was then kept for every later login.
func TestStartupTransactionAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "startiso")
	leaver := muxtest.Connect(t, withParams(t, m.url(db), map[string]string{
		"default_transaction_isolation": "repeatable read", "default_transaction_read_only": "on"}),
		pgx.QueryExecModeSimpleProtocol, opTimeout)
	cases := []map[string]string{
		{"transaction_isolation": "repeatable read"},
		{"transaction_isolation": "serializable"},
		{"transaction_isolation": "READ Committed"},
		{"transaction_isolation": "bogus"},
		{"transaction_read_only": "off"},
		{"transaction_read_only": "on"},
		{"transaction_read_only": "nope"},
		{"transaction_deferrable": "off"},
		{"options": "-c default_transaction_isolation=serializable -c transaction_isolation=serializable"},
	}
	run := func(t *testing.T, db string) {
		for _, params := range cases {
			t.Run(fmt.Sprint(params), func(t *testing.T) {
				_, err := leaver.Exec(ctxT(t), "SELECT 1") // the server gets the leaver's defaults again
				require.NoError(t, err)
				want := loginShows(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params), "transaction_isolation")
				got := loginShows(t, withParams(t, m.url(db), params), "transaction_isolation")
				require.Equal(t, want, got)
			})
		}
	}
	run(t, db)

	// The database's own default is set after the login's level was taken: PostgreSQL
	// still compares with the server's.
	other := m.pg.NewDatabase(t, "startisodb")
	_, err := m.direct(t, other).Exec(ctxT(t), "ALTER DATABASE "+other+" SET default_transaction_isolation = 'repeatable read'")
	require.NoError(t, err)
	leaver = muxtest.Connect(t, withParams(t, m.url(other), map[string]string{"default_transaction_isolation": "serializable"}),
		pgx.QueryExecModeSimpleProtocol, opTimeout)
	t.Run("database default", func(t *testing.T) { run(t, other) })
}

// TestLoginOnlyValueAsPostgres: a startup value of an integer setting only a login may
// set (post_auth_delay, in seconds, 0 .. 2147) that PostgreSQL does not read as one, or
// that is out of its range, refuses the login through pgmux as on a direct connection
// (22023, PostgreSQL's message and hint); pgmux took every such login. A value it
// takes, with or without a unit, logs in on both, and a later login with it asks no
// server: it logs in while the pool's one server is held.
func TestLoginOnlyValueAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, waitTimeout: 5})
	db := m.pg.NewDatabase(t, "loginonlyint")
	cases := []map[string]string{
		{"post_auth_delay": "x"},
		{"POST_AUTH_DELAY": "x"},
		{"options": "-c post_auth_delay=x"},
		{"post_auth_delay": "2148"},
		{"options": "-c post_auth_delay=1h"},
		{"post_auth_delay": "-1"},
		{"post_auth_delay": "99999999999"},
		{"post_auth_delay": "08"},
		{"post_auth_delay": "5 S"},
		{"post_auth_delay": "1kB"},
		{"post_auth_delay": "inf"},
		{"post_auth_delay": "1.5e"},
		{"post_auth_delay": "1s"},
		{"post_auth_delay": "1"},
		{"options": `-c post_auth_delay=400\ ms`},
		{"post_auth_delay": "0x0"},
	}
	sameLogins(t, m, db, cases, []map[string]string{{"post_auth_delay": "1s"}, {"options": `-c post_auth_delay=400\ ms`}})
}
