package sticky

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestDropDatabaseThroughPool runs what Django's test runner sends through the pooled
// URL: it clones the test database (`CREATE DATABASE "x_1" WITH TEMPLATE "x"`, for
// --parallel) and drops it (`DROP DATABASE "x"`) after its connections to it have
// closed, each a simple Query, and then the same with the extended protocol (JDBC, pgx).
// pgmux's idle server connections to that database (and its shared LISTEN connection,
// after the last listener left) are sessions PostgreSQL waits for
// and then refuses the statement over (55006 "database … is being accessed by other
// users"), where a direct connection succeeds: pgmux must close them first.
//
// In every prepared_statement_mode, and without statement handling
// (max_prepared_statements = 0): the Parse of such a statement freed the database only
// where pgmux rewrites statement messages (cache and unnamed mode); with
// max_prepared_statements = 0 the ALTER DATABASE … RENAME sent with Parse/Bind/Execute
// failed with 55006.
//
// And in session mode, where a leaving client's server runs server_reset_query (DISCARD
// ALL) before it is idle: a DROP sent the moment that client disconnects found the server
// not idle yet (still leased, or in its reset), left it open, and failed with 55006
// once PostgreSQL's five seconds were up; a direct connection, whose backend exits in
// time, succeeds. leaveThenDrop repeats that race in every mode.
func TestDropDatabaseThroughPool(t *testing.T) {
	for name, extra := range map[string]map[string]string{
		"cache":                     nil,
		"unnamed":                   {"prepared_statement_mode": "unnamed"},
		"max_prepared_statements=0": {"max_prepared_statements": "0"},
		"session":                   {"pool_mode": "session"},
	} {
		t.Run(name, func(t *testing.T) { dropDatabaseThroughPool(t, startMux(t, setup{extra: extra})) })
	}
}

func dropDatabaseThroughPool(t *testing.T, m *mux) {
	src := m.pg.NewDatabase(t, "dj_test")
	clone := src + "_1"
	t.Cleanup(func() {
		m.pg.Exec(t, `DROP DATABASE IF EXISTS "`+clone+`" WITH (FORCE)`)
		m.pg.Exec(t, `DROP DATABASE IF EXISTS "`+clone+`x" WITH (FORCE)`)
	})
	superURL := func(db string) string { return m.URL(pgtest.SuperUser, "", db) }
	// use leaves an idle server connection to db in pgmux's pool of url's user.
	use := func(url, db string) {
		t.Helper()
		c, err := pgconn.Connect(ctxT(t), url)
		require.NoError(t, err)
		_, err = c.Exec(ctxT(t), "SELECT 1").ReadAll()
		require.NoError(t, err)
		require.NoError(t, c.Close(ctxT(t)))
		var n int
		require.NoError(t, m.direct(t, "postgres").QueryRow(ctxT(t),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n))
		require.Positive(t, n, "pgmux keeps a server connection to %s", db)
	}
	runner, err := pgconn.Connect(ctxT(t), superURL("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close(context.Background()) })
	simple := func(sql string) error {
		_, err := runner.Exec(ctxT(t), sql).ReadAll()
		return err
	}

	use(m.url(src), src) // the app's connections
	use(superURL(src), src)
	require.NoError(t, simple(`CREATE DATABASE "`+clone+`" WITH TEMPLATE "`+src+`"`))

	use(m.url(src), src)
	// A client that listened there and left: the shared LISTEN connection stays open.
	listen, err := pgconn.Connect(ctxT(t), m.url(src))
	require.NoError(t, err)
	_, err = listen.Exec(ctxT(t), "LISTEN jobs").ReadAll()
	require.NoError(t, err)
	_, err = listen.Exec(ctxT(t), "UNLISTEN jobs").ReadAll()
	require.NoError(t, err)
	require.NoError(t, listen.Close(ctxT(t)))
	require.NoError(t, simple(`DROP DATABASE "`+src+`"`))
	var left int
	require.NoError(t, m.direct(t, "postgres").QueryRow(ctxT(t),
		"SELECT count(*) FROM pg_database WHERE datname = $1", src).Scan(&left))
	require.Zero(t, left)

	// The extended protocol: Parse/Bind/Execute/Sync of the unnamed statement, and a
	// named one from pgx's statement cache.
	use(m.url(clone), clone)
	_, err = runner.ExecParams(ctxT(t), `ALTER DATABASE "`+clone+`" RENAME TO "`+clone+`x"`, nil, nil, nil, nil).Close()
	require.NoError(t, err)
	use(m.url(clone+"x"), clone+"x")
	su, err := pgx.Connect(ctxT(t), superURL("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = su.Close(context.Background()) })
	_, err = su.Exec(ctxT(t), `DROP DATABASE "`+clone+`x"`, pgx.QueryExecModeCacheStatement)
	require.NoError(t, err)

	leaveThenDrop(t, m, simple)
}

// leaveThenDrop drops a database right after the last client that used it through pgmux
// has disconnected, with no pause between (a test runner's teardown), a few times: the
// window in which the leaving client's server is not idle yet is short.
func leaveThenDrop(t *testing.T, m *mux, drop func(string) error) {
	for i := range 5 {
		db := m.pg.NewDatabase(t, "dj_leave")
		c, err := pgconn.Connect(ctxT(t), m.url(db))
		require.NoError(t, err)
		_, err = c.Exec(ctxT(t), "SELECT 1").ReadAll()
		require.NoError(t, err)
		require.NoError(t, c.Close(ctxT(t)))
		require.NoError(t, drop(`DROP DATABASE "`+db+`"`), "round %d", i)
	}
}
