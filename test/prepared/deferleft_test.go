package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestDeferredCloseBehindRefusedParse: a Close sent with no server linked, behind a Parse
// also sent with none, in one request. PostgreSQL refuses the Parse ("selec"), skips the
// Close, and the closed statement stays the client's. pgmux used to record both
// (deferred.go) and drop the name at once: "13Z" for the request where PostgreSQL answers
// "EZ", and "EZ" (26000) for the next Bind of the name where PostgreSQL answers "2DCZ";
// sent with the request to a server, the Close was skipped there but the name was gone
// all the same. Such a Close now goes to the server with the Parse, and the name is
// dropped when the server completes it. A Close with nothing before it is still answered
// by pgmux.
func TestDeferredCloseBehindRefusedParse(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 2, maxStmts: 5, mode: mode})
			s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
			cases := map[string][]step{
				"then Sync": {
					s("1Z", parse("a", "SELECT 1"), syncMsg),
					s("EZ", parse("x", "selec"), closeStmt("a"), syncMsg),
					s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
					s("3Z", closeStmt("a"), syncMsg),
					s("EZ", bind("", "a"), execute("", 0), syncMsg),
				},
				"then Bind": {
					s("1Z", parse("a", "SELECT 2"), syncMsg),
					s("EZ", parse("x", "selec"), closeStmt("a"), bind("", "a"), execute("", 0), syncMsg),
					s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
				},
				"accepted Parse": {
					s("1Z", parse("a", "SELECT 3"), syncMsg),
					s("13Z", parse("y", "SELECT 4"), closeStmt("a"), syncMsg),
					s("EZ", bind("", "a"), execute("", 0), syncMsg),
					s("2DCZ", bind("", "y"), execute("", 0), syncMsg),
				},
			}
			for name, steps := range cases {
				t.Run(name, func(t *testing.T) {
					sameAsDirect(t, m, database(t, m.pg, "deferclose"), steps)
				})
			}
		})
	}
}

// TestDeferredParseAgainLater: a Parse and Sync pgmux answered itself (no server linked:
// deferred.go), then a Parse of the same name inside a transaction block or in the middle
// of a request. PostgreSQL refused the first ("selec"), so the name is free: the second
// gets ParseComplete and the transaction goes on. pgmux checked the first statement only
// at the start of a request outside a transaction block, elsewhere took the second Parse
// as a duplicate, and answered 42P05: the transaction was aborted ("EZ" where PostgreSQL
// answers "1Z", then 25P02, then ROLLBACK for the COMMIT). It now checks such statements
// on the next server the client links, before the client's request. Only the first
// Parse's answer differs from PostgreSQL's (pgmux's own ParseComplete); from the second
// on, the answers are PostgreSQL's, byte for byte.
func TestDeferredParseAgainLater(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := []parseAgainCase{
		{"in a transaction block", parse("d", "selec"), "EZ", "1Z", []step{
			s("CZ", query("BEGIN")),
			s("1Z", parse("d", "SELECT 8"), syncMsg),
			s("2DCZ", bind("", "d"), execute("", 0), syncMsg),
			s("EZ", parse("d", "SELECT 9"), syncMsg),
			s("CZ", query("COMMIT")),
		}},
		{"in the middle of a request", parse("e", "SELECT * FROM nosuchtable"), "EZ", "1Z", []step{
			s("11Z", parse("f", "SELECT 1"), parse("e", "SELECT 8"), syncMsg),
			s("2DCZ", bind("", "e"), execute("", 0), syncMsg),
		}},
		{"in a pipelined transaction", parse("g", "selec"), "EZ", "1Z", []step{
			s("CZ1Z2DCZCZ", query("BEGIN"), parse("g", "SELECT 8"), syncMsg, bind("", "g"), execute("", 0), syncMsg, query("COMMIT")),
		}},
		{"accepted first, in a transaction block", parse("v", "SELECT 7"), "1Z", "1Z", []step{
			s("CZ", query("BEGIN")),
			s("EZ", parse("v", "SELECT 8"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "v"), execute("", 0), syncMsg),
		}},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 2, maxStmts: 5, mode: mode})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, m, "deferlater") })
			}
		})
	}
}
