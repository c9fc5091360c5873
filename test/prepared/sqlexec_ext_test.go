package prepared

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestExtendedExecuteAsPostgres: SQL EXECUTE of the client's statement sent with the
// extended protocol (a Parse of "EXECUTE a(1)", named as pgx's statement cache does or
// unnamed as JDBC and pgx's ExecParams do, then Bind and Execute) runs the client's
// statement on whichever server the client has, byte for byte as on a direct
// connection: its rows, its result columns at Describe, its errors naming the client's
// statement, and after the statement is deallocated (26000) or prepared again as
// another. In cache mode, where servers keep the client's statements under pgmux's names.
func TestExtendedExecuteAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 3, mode: "cache"})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	ext := func(sql string, params ...string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", "", params...), describePortal(""), execute("", 0), syncMsg}
	}
	prep := s("1tTZ", parse("a", "SELECT $1::int * 2 AS doubled"), describeStmt("a"), syncMsg)
	cases := map[string][]step{
		"unnamed EXECUTE of a Parse'd statement": {
			prep,
			s("12TDCZ", ext("EXECUTE a(21)")...),
			s("1EZ", ext("EXECUTE a($1)", "4")...), // PostgreSQL: no parameters in EXECUTE's arguments
			s("12TDCZ", ext("execute A (5)")...),
			s("12TDCZ", ext("EXPLAIN (COSTS OFF) EXECUTE a(1)")...),
		},
		"named EXECUTE, bound again on other servers": {
			prep,
			s("1tTZ", parse("e", "EXECUTE a(7)"), describeStmt("e"), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
			s("2TDCZ", bind("", "e"), describePortal(""), execute("", 0), syncMsg),
			s("EZ", bind("", "e", "1"), execute("", 0), syncMsg),
		},
		"SQL PREPAREd statement": {
			s("CZ", query("PREPARE q (int, text) AS SELECT $1 * 2, $2 || '!'")),
			s("12TDCZ", ext("EXECUTE q(7, 'x')")...),
			s("1tTZ", parse("e", "EXECUTE q(1, 'y')"), describeStmt("e"), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
		},
		"errors name the client's statement": {
			prep,
			s("12TEZ", ext("EXECUTE a(1, 2)")...),
			s("12TEZ", ext("EXECUTE a('x')")...),
			s("12TEZ", ext("EXECUTE   a(1/0)")...),
			s("12nEZ", ext("EXECUTE nope(1)")...),
		},
		"a Bind with the wrong number of parameters names the client's statement": {
			prep,
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("EZ", bind("", "a", "1", "2"), execute("", 0), syncMsg),
			s("1EZ", parse("", "SELECT $1::int"), bind("", "", "1", "2"), execute("", 0), syncMsg),
		},
		"deallocated, then prepared again as another": {
			prep,
			s("1tTZ", parse("e", "EXECUTE a(20)"), describeStmt("e"), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
			s("CZ", query("DEALLOCATE a")),
			s("2EZ", bind("", "e"), execute("", 0), syncMsg),
			s("12nEZ", ext("EXECUTE a(1)")...),
			s("CZ", query("PREPARE a AS SELECT 'other'::text AS t")),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
			s("12TDCZ", ext("EXECUTE a")...),
		},
		"unnamed EXECUTE bound in a later request": {
			prep,
			s("1Z", parse("", "EXECUTE a(8)"), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
		"in a failed transaction": {
			prep,
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", ext("EXECUTE a(1)")...),
			s("CZ", query("ROLLBACK")),
			s("12TDCZ", ext("EXECUTE a(1)")...),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "extexec")
			sameAsDirect(t, m, db, steps)
		})
	}
}

// TestExtendedExecuteWithPgx: pgx sends an app's EXECUTE with arguments through its
// statement cache (a named Parse of the text) or as an unnamed statement; through pgmux,
// with another client on the same two servers, it runs the client's statement.
func TestExtendedExecuteWithPgx(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, mode: "cache"})
	db := database(t, m.pg, "pgxexec")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec} {
		conn := m.connect(t, db, mode)
		other := m.connect(t, db, pgx.QueryExecModeCacheStatement)
		_, err := conn.Exec(ctx(t), "PREPARE p (int) AS SELECT $1 + 1")
		require.NoError(t, err)
		for i := 0; i < 20; i++ {
			var got int
			// PostgreSQL takes no parameters in EXECUTE's arguments: the value is in the
			// text, a new statement each round.
			require.NoError(t, conn.QueryRow(ctx(t), fmt.Sprintf("EXECUTE p(%d)", i)).Scan(&got), "mode %v round %d", mode, i)
			require.Equal(t, i+1, got)
			var one int
			require.NoError(t, other.QueryRow(ctx(t), "SELECT 1").Scan(&one))
		}
	}
}
