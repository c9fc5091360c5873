package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

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

// sameAnswersLoose is sameAnswers comparing errors by severity, code and message only:
// where pgmux prepares a statement in front of the client's Bind or Describe, the
// server's 25P02 comes from its Parse, at another line of PostgreSQL's source.
func sameAnswersLoose(t *testing.T, direct, pooled *raw, steps []step) {
	t.Helper()
	strip := func(b []byte) string {
		if len(b) == 0 || b[0] != 'E' {
			return string(b)
		}
		var e pgproto3.ErrorResponse
		require.NoError(t, e.Decode(b[5:]))
		return e.Severity + " " + e.Code + " " + e.Message + " " + e.Detail + " " + e.Hint
	}
	for i, s := range steps {
		want, kinds := direct.transcript(s.msgs...)
		require.Equal(t, s.want, kinds, "step %d directly", i)
		got, gotKinds := pooled.transcript(s.msgs...)
		require.Equal(t, kinds, gotKinds, "step %d through pgmux", i)
		for j := range want {
			require.Equal(t, strip(want[j]), strip(got[j]), "step %d message %d (%c)", i, j, kinds[j])
		}
	}
}

// TestDeferredParseFirstUsedInFailedTransaction: a Parse and Sync sent with no server
// linked is answered by pgmux (deferred.go) and checked at the statement's first use. When
// that first use is in a failed transaction, the server refuses pgmux's Parse of it with
// 25P02, as PostgreSQL refuses the client's Bind or Describe; PostgreSQL had accepted the
// client's Parse, so after ROLLBACK the statement works. pgmux used to mark it failed
// whatever the error, and every later Bind got 26000.
func TestDeferredParseFirstUsedInFailedTransaction(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, maxStmts: 5})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"Describe": {
			s("1Z", parse("a", "SELECT 1 AS z"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", describeStmt("a"), syncMsg),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("tTZ", describeStmt("a"), syncMsg),
		},
		"Bind": {
			s("1Z", parse("a", "SELECT 2 AS z"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"pipelined": {
			s("1Z", parse("a", "SELECT 3 AS z"), syncMsg),
			s("CZEZEZCZ", query("BEGIN"), query("SELECT 1/0"), bind("", "a"), execute("", 0), syncMsg, query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "deferredtx")
			direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
			sameAnswersLoose(t, direct, m.raw(t, db), steps)
		})
	}
}

// TestCloseSkippedAfterError: PostgreSQL skips a Close after an error earlier in the
// request, and the statement stays the client's. pgmux used to drop the client's name
// when it sent the Close, so the statement's next Bind got 26000; it now drops it when
// the server's CloseComplete arrives. A Parse of the name behind its Close, in the same
// request or the next, is still no duplicate.
func TestCloseSkippedAfterError(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, maxStmts: 5})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"after an error": {
			s("1Z", parse("a", "SELECT 1"), syncMsg),
			s("1EZ", parse("", "SELECT 1/0"), bind("", ""), execute("", 0), closeStmt("a"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("3Z", closeStmt("a"), syncMsg),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"after a duplicate Parse": {
			s("1Z", parse("a", "SELECT 1"), syncMsg),
			s("EZ", parse("a", "SELECT 2"), closeStmt("a"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"after an error, on the server": {
			s("12DCZ", parse("a", "SELECT 5"), bind("", "a"), execute("", 0), syncMsg),
			s("EZ", bind("", "nope"), closeStmt("a"), parse("a", "SELECT 6"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"in a failed transaction": {
			s("1Z", parse("a", "SELECT 1"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("3Z", closeStmt("a"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"then a Parse of the name": {
			s("12DCZ", parse("a", "SELECT 1"), bind("", "a"), execute("", 0), syncMsg),
			s("312DCZ", closeStmt("a"), parse("a", "SELECT 2"), bind("", "a"), execute("", 0), syncMsg),
			s("3Z1Z", closeStmt("a"), syncMsg, parse("a", "SELECT 3"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("3Z", closeStmt("nope"), syncMsg),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "closeskip")
			sameAsDirect(t, m, db, steps)
		})
	}
}

// TestUnnamedModeSQLPrepareHoldsName: in unnamed mode a SQL PREPARE goes to the server as
// written (the client is pinned to it), and its name is the client's, as in PostgreSQL:
// a protocol Parse of it gets 42P05, and Bind, Describe, EXECUTE and Close reach the SQL
// statement. pgmux used to answer that Parse with ParseComplete and bind the protocol
// statement instead: a wrong result.
func TestUnnamedModeSQLPrepareHoldsName(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, maxStmts: 5, mode: "unnamed"})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"Parse of a PREPAREd name": {
			s("CZ", query("PREPARE p1 AS SELECT 'sql'")),
			s("EZ", parse("p1", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "p1"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE p1")),
			s("tTZ", describeStmt("p1"), syncMsg),
			s("3Z", closeStmt("p1"), syncMsg),
			s("EZ", bind("", "p1"), execute("", 0), syncMsg),
			s("1Z", parse("p1", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "p1"), execute("", 0), syncMsg),
		},
		"pipelined": {
			s("CZEZ", query("PREPARE p2 (int) AS SELECT $1 * 2"), parse("p2", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "p2", "21"), execute("", 0), syncMsg),
		},
		"DEALLOCATE, DISCARD ALL and a failed PREPARE free it": {
			s("CZ", query("PREPARE p3 AS SELECT 3")),
			s("CZ", query("DEALLOCATE p3")),
			s("1Z", parse("p3", "SELECT 'p3'"), syncMsg),
			s("CZ", query("PREPARE p4 AS SELECT 4")),
			s("CZ", query("DISCARD ALL")),
			s("1Z", parse("p4", "SELECT 'p4'"), syncMsg),
			s("EZ", query("PREPARE bad AS SELEC 1")),
			s("1Z", parse("bad", "SELECT 'bad'"), syncMsg),
			s("2DCZ", bind("", "bad"), execute("", 0), syncMsg),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "unnamedsql")
			sameAsDirect(t, m, db, steps)
		})
	}
}

// TestDeferredParseThenParseAgain: a Parse and Sync pgmux answered itself (no server
// linked: deferred.go), then a Parse of the same name. PostgreSQL answers the second with
// 42P05 only if it accepted the first; it refused "selec" (42601), so the name is free
// and the second Parse succeeds. pgmux used to take the unchecked first statement as
// live and answer 42P05; it now checks it on the server first (on the next link, or at
// the re-Parse). Only the first Parse's
// answer differs from PostgreSQL's (pgmux's own ParseComplete); from the second on, the
// answers are PostgreSQL's, byte for byte.
func TestDeferredParseThenParseAgain(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, maxStmts: 5})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := []parseAgainCase{
		{"refused first", parse("d", "selec"), "EZ", "1Z", []step{
			s("1Z", parse("d", "SELECT 8"), syncMsg),
			s("2DCZ", bind("", "d"), execute("", 0), syncMsg),
			s("EZ", parse("d", "SELECT 9"), syncMsg),
		}},
		{"accepted first", parse("v", "SELECT 7"), "1Z", "1Z", []step{
			s("EZ", parse("v", "SELECT 8"), syncMsg),
			s("2DCZ", bind("", "v"), execute("", 0), syncMsg),
		}},
		{"missing table first", parse("w", "SELECT * FROM nosuchtable"), "EZ", "1Z", []step{
			s("1tTZ", parse("w", "SELECT 1"), describeStmt("w"), syncMsg),
			s("2DCZ", bind("", "w"), execute("", 0), syncMsg),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, m, "deferagain") })
	}
}

// parseAgainCase is a Parse and Sync that pgmux answers itself (no server linked), whose
// answer's kinds are direct on a direct connection and pooled through pgmux, then steps
// whose answers must be PostgreSQL's, byte for byte.
type parseAgainCase struct {
	name           string
	first          *pgproto3.Parse
	direct, pooled string
	steps          []step
}

// run runs the case in a new database (prefix) through m and directly.
func (tc parseAgainCase) run(t *testing.T, m *mux, prefix string) {
	t.Helper()
	db := database(t, m.pg, prefix)
	direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	pooled := m.raw(t, db)
	_, kinds := direct.transcript(tc.first, syncMsg)
	require.Equal(t, tc.direct, kinds)
	_, kinds = pooled.transcript(tc.first, syncMsg)
	require.Equal(t, tc.pooled, kinds)
	sameAnswers(t, direct, pooled, tc.steps, func() {})
}
