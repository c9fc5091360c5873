package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// sameOnOneServer is sameAsDirect without the other client: with a pool of one server
// the client keeps finding its statements prepared there, and a client in a transaction
// would keep the other waiting.
func sameOnOneServer(t *testing.T, m *mux, db string, steps []step) {
	t.Helper()
	direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	pooled := dialRaw(t, m.url(db))
	sameAnswers(t, direct, pooled, steps, func() {})
}

// TestParseCachedInFailedTransaction: a Parse of a named statement whose text the server
// already has, sent in a failed transaction, gets PostgreSQL's 25P02 and leaves the name
// free, so that after ROLLBACK the client can prepare it (pgx never caches a statement
// whose Parse failed and parses it again). pgmux used to answer it with a Close and an
// empty Parse, which PostgreSQL accepts even in a failed transaction: ParseComplete, the
// name kept, and 42P05 at every Parse of it after ROLLBACK.
func TestParseCachedInFailedTransaction(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 5})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"pgx re-parse after ROLLBACK": {
			s("12DCZ", parse("warm", "SELECT 4242 AS v"), bind("", "warm"), execute("", 0), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", parse("stmtcache_1", "SELECT 4242 AS v"), describeStmt("stmtcache_1"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("1tTZ", parse("stmtcache_1", "SELECT 4242 AS v"), describeStmt("stmtcache_1"), syncMsg),
			s("EZ", parse("stmtcache_1", "SELECT 4242 AS v"), describeStmt("stmtcache_1"), syncMsg),
			s("2DCZ", bind("", "stmtcache_1"), execute("", 0), syncMsg),
		},
		"bind after ROLLBACK": {
			s("12DCZ", parse("a", "SELECT 42"), bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", parse("e", "SELECT 42"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("EZ", bind("", "e"), execute("", 0), syncMsg),
			s("1Z", parse("e", "SELECT 42"), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
		},
		"pipelined behind the failing query": {
			s("12DCZ", parse("a", "SELECT 43"), bind("", "a"), execute("", 0), syncMsg),
			s("CZEZEZCZ", query("BEGIN"), query("SELECT 1/0"), parse("p", "SELECT 43"), syncMsg, query("ROLLBACK")),
			s("EZ", bind("", "p"), execute("", 0), syncMsg),
			s("1Z", parse("p", "SELECT 43"), syncMsg),
			s("2DCZ", bind("", "p"), execute("", 0), syncMsg),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "failedtx")
			sameOnOneServer(t, m, db, steps)
		})
	}
}
