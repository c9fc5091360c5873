package prepared

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestUnnamedQueryPastSavedAsPostgres: a simple Query in a request that already holds
// as many Parses of the unnamed statement as pgmux keeps the statement before (64).
// Skipped behind an error, the Query leaves the client the statement that ran last, as
// in PostgreSQL; run, it drops it. pgmux made room for a Parse or Close past the bound,
// not for a Query, whose skip then left the client none (26000).
func TestUnnamedQueryPastSavedAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	pipeline := func(tag string, n int) ([]pgproto3.FrontendMessage, string) {
		var msgs []pgproto3.FrontendMessage
		want := ""
		for i := 1; i <= n; i++ {
			msgs = append(msgs, parse("", fmt.Sprintf("SELECT %d AS %s%d", i, tag, i)), bind("", ""), execute("", 0))
			want += "12DC"
		}
		return msgs, want
	}
	skipped, wantSkipped := pipeline("s", 150)
	skipped = append(skipped, bind("", "nosuch"), query("SELECT 0"), syncMsg)
	run, wantRun := pipeline("r", 150)
	run = append(run, query("SELECT 0 AS q"), syncMsg)
	late, wantLate := pipeline("l", 150)
	late = append(late, query("SELECT 0 AS q"), parse("", "SELEC 1"), query("SELECT 1"), syncMsg)
	cases := map[string][]step{}
	for _, n := range []int{64, 65, 129} {
		msgs, want := pipeline(fmt.Sprintf("n%d_", n), n)
		msgs = append(msgs, bind("", "nosuch"), query("SELECT 0"), syncMsg)
		cases[fmt.Sprintf("%d then skipped", n)] = []step{
			s(want+"EZ", msgs...),
			s("tTZ", describeStmt(""), syncMsg),
		}
	}
	for k, v := range map[string][]step{
		"skipped behind an error": {
			s(wantSkipped+"EZ", skipped...),
			s("tTZ", describeStmt(""), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
		"run": {
			s(wantRun+"TDCZZ", run...),
			s("EZ", describeStmt(""), syncMsg),
		},
		"run, then a failed Parse and a skipped Query": {
			s(wantLate+"TDCZEZ", late...),
			s("EZ", describeStmt(""), syncMsg),
		},
	} {
		cases[k] = v
	}
	inUnnamedSetups(t, "unnroomq", cases, sameAsDirectAsWanted)
}

// TestUnnamedQueryAfterReadErrorAsPostgres: a simple Query a client sends after it has
// read its request's error (it sent a Flush), before its Sync: PostgreSQL skips it and
// answers nothing for it, so the unnamed statement stays, and the Sync's ReadyForQuery
// is the only one. pgmux took that ReadyForQuery as the Query's, and every answer after
// it for the one before (a CloseComplete of its own reached the client), and dropped
// the statement; so too for a hidden query of its own sent in such a request (after a
// DEALLOCATE ALL or a SET).
func TestUnnamedQueryAfterReadErrorAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	inUnnamedSetups(t, "unnreadq", map[string][]step{
		"then a Sync": {
			s("1E", parse("", "SELECT 1 AS a"), bind("", "nosuch"), flushMsg),
			s("Z", query("SELECT 2"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
			s("1Z", parse("", "SELECT 3 AS b"), syncMsg),
		},
		"then a Describe of it": {
			s("1E", parse("", "SELECT 7 AS e"), bind("", "nosuch"), flushMsg),
			s("Z", query("SELECT 8"), describeStmt(""), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"then statements pgmux follows": {
			s("1E", parse("", "SELECT 9 AS f"), bind("", "nosuch"), flushMsg),
			s("Z", query("DEALLOCATE ALL"), query("LISTEN x"), query("SET statement_timeout = '5s'"), syncMsg),
			s("TDCZ", query("SHOW statement_timeout")),
		},
		"then a Parse and a Sync": {
			s("1E", parse("", "SELECT 4 AS c"), bind("", "nosuch"), flushMsg),
			s("Z", query("SELECT 5"), parse("", "SELECT 6 AS d"), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
	}, sameAsDirectAsWanted)
}
