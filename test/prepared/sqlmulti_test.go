package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSQLByNameAsPostgres: EXECUTE, DEALLOCATE and PREPARE of the client's statement
// names inside a Query of several statements answer as PostgreSQL does, byte for byte
// against a direct connection (in unnamed mode, single statements too).
func TestSQLByNameAsPostgres(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testSQLByName(t, startMux(t, setup{poolSize: 3, mode: mode})) })
	}
}

func testSQLByName(t *testing.T, m *mux) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	prep := s("1tTZ", parse("a", "SELECT $1::int * 2"), describeStmt("a"), syncMsg)
	cases := map[string][]step{
		"EXECUTE then SELECT": {
			prep,
			s("TDCTDCZ", query("EXECUTE a(21); SELECT 2")),
			s("TDCTDCTDCZ", query("SELECT 1; EXECUTE a(1); EXECUTE a(2)")),
			s("TDCZ", query("EXECUTE a(4)")),
			s("2DCZ", bind("", "a", "5"), execute("", 0), syncMsg),
		},
		"DEALLOCATE at the end": {
			prep,
			s("TDCCZ", query("SELECT 1; DEALLOCATE a")),
			s("EZ", bind("", "a", "1"), execute("", 0), syncMsg),
			s("1Z", parse("a", "SELECT 3"), syncMsg),
			s("TDCCZ", query("SELECT 1; DEALLOCATE PREPARE a")),
			s("EZ", query("EXECUTE a")),
		},
		"statements after DEALLOCATE see it gone": {
			prep,
			s("CEZ", query("DEALLOCATE a; EXECUTE a(1)")),
			s("EZ", query("EXECUTE a(1)")),
			s("1Z", parse("a", "SELECT 3"), syncMsg),
			s("CEZ", query("DEALLOCATE a; DEALLOCATE a")),
			s("1Z", parse("a", "SELECT 4"), syncMsg),
			s("TDCCEZ", query("EXECUTE a; DEALLOCATE ALL; EXECUTE a")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"an error before DEALLOCATE keeps the statement": {
			prep,
			s("EZ", query("SELECT 1/0; DEALLOCATE a")),
			s("TDCEZ", query("EXECUTE a(2); SELECT 1/0; DEALLOCATE a")),
			s("2DCZ", bind("", "a", "5"), execute("", 0), syncMsg),
			s("EZ", query("EXECUTE nope; SELECT 1")),
			s("EZ", query("EXECUTE a('x'); SELECT 1")),
		},
		"PREPARE of a name the client has": {
			prep,
			s("EZ", query("PREPARE a AS SELECT 9; SELECT 1")),
			s("EZ", query("PREPARE a AS SELECT nosuchcolumn; SELECT 1")),
			s("TDCZ", query("EXECUTE a(3)")),
		},
		"DEALLOCATE then PREPARE again": {
			prep,
			s("CCTDCZ", query("DEALLOCATE a; PREPARE a AS SELECT 5; EXECUTE a")),
			s("TDCZ", query("EXECUTE a")),
			s("CZ", query("DEALLOCATE a")),
			s("EZ", query("EXECUTE a")),
		},
		"SQL PREPAREd statements": {
			s("CZ", query("PREPARE q (int, text) AS SELECT $1 * 2, $2 || '!'")),
			s("TDCTDCZ", query("EXECUTE q(1, 'a'); EXECUTE q(2, 'b')")),
			s("TDCCZ", query("EXECUTE q(3, 'c'); DEALLOCATE q")),
			s("EZ", query("EXECUTE q(1, 'a')")),
		},
		"EXPLAIN EXECUTE": {
			prep,
			s("TDCTDCZ", query("EXPLAIN (COSTS OFF) EXECUTE a(1); SELECT 1")),
		},
		"transactions": {
			prep,
			s("CTDCZ", query("BEGIN; EXECUTE a(2)")),
			s("TDCTDCZ", query("EXECUTE a(3); SELECT 1")),
			s("CZ", query("COMMIT")),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", query("SELECT 1; EXECUTE a(1)")),
			s("EZ", query("SELECT 1; DEALLOCATE a")),
			s("CZ", query("ROLLBACK")),
			s("TDCTDCZ", query("EXECUTE a(3); SELECT 1")),
		},
	}
	t.Run("DDL since the statement was made", func(t *testing.T) {
		// DDL runs once per connection: each gets a database of its own.
		steps := []step{
			s("CZ", query("CREATE TABLE t8 (x int, y int)")),
			s("1Z", parse("a", "SELECT x FROM t8"), syncMsg),
			s("CZ", query("ALTER TABLE t8 DROP COLUMN x")),
			s("TDCEZ", query("SELECT 1; EXECUTE a")),
			s("EZ", query("EXECUTE a")),
		}
		direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, database(t, m.pg, "ddl_direct")))
		pooled := dialRaw(t, m.url(database(t, m.pg, "ddl_pooled")))
		sameAnswers(t, direct, pooled, steps, func() {})
	})
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "byname")
			sameAsDirect(t, m, db, steps)
		})
	}
}
