package prepared

import (
	"sort"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// unnamedSetups are the configurations the unnamed statement's tests run in: both
// prepared_statement_mode values, and the unnamed-statement cache on.
var unnamedSetups = map[string]setup{
	"cache":                    {poolSize: 2, mode: "cache"},
	"unnamed":                  {poolSize: 2, mode: "unnamed"},
	"cache_unnamed_statements": {poolSize: 2, mode: "cache", extra: []string{cacheUnnamed}},
}

// sameUnnamedAsDirect runs each case's steps, twice (a text's second sighting is served
// from the unnamed-statement cache when it is on), directly and through pgmux in each of
// unnamedSetups, and requires the same bytes back, message by message.
func sameUnnamedAsDirect(t *testing.T, prefix string, cases map[string][]step) {
	inUnnamedSetups(t, prefix, cases, sameAsDirect)
}

// inUnnamedSetups is sameUnnamedAsDirect comparing with same.
func inUnnamedSetups(t *testing.T, prefix string, cases map[string][]step, same func(*testing.T, *mux, string, []step)) {
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	for setupName, s := range unnamedSetups {
		t.Run(setupName, func(t *testing.T) {
			m := startMux(t, s)
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					steps := cases[name]
					same(t, m, database(t, m.pg, prefix), append(steps[:len(steps):len(steps)], steps...))
				})
			}
		})
	}
}

// TestUnnamedAfterFailedParseAsPostgres: PostgreSQL drops the unnamed statement before
// it parses a new one, so after a Parse of it that failed (a syntax or analysis error,
// 25P02 in a failed transaction) the client has none, nor after the Parses of it the
// server skipped behind that error: a Describe or Bind of it gets 26000 "unnamed
// prepared statement does not exist", inside a transaction block as outside. pgmux used
// to parse the failed text again in front of them, and the client got that Parse's
// error once more (42601, 42703) or, in the transaction block, 25P02.
func TestUnnamedAfterFailedParseAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	bad := parse("", "SELEC 1")
	sameUnnamedAsDirect(t, "unnfailed", map[string][]step{
		"syntax error": {
			s("1Z", parse("", "SELECT 1 AS a"), syncMsg),
			s("EZ", bad, syncMsg),
			s("EZ", describeStmt(""), syncMsg),
			s("EZ", bind("", ""), execute("", 0), syncMsg),
		},
		"analysis error, a Parse skipped behind it": {
			s("1Z", parse("", "SELECT 2 AS b"), syncMsg),
			s("EZ", parse("", "SELECT nosuch"), parse("", "SELECT 3 AS c"), syncMsg),
			s("EZ", bind("", ""), execute("", 0), syncMsg),
			s("EZ", describeStmt(""), syncMsg),
		},
		"transaction block": {
			s("CZ", query("BEGIN")),
			s("1Z", parse("", "SELECT 4 AS d"), syncMsg),
			s("EZ", bad, syncMsg),
			s("EZ", describeStmt(""), syncMsg),
			s("EZ", bind("", ""), execute("", 0), syncMsg),
			s("CZ", query("ROLLBACK")),
		},
		"refused in a failed transaction": {
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", parse("", "SELECT 5 AS e"), syncMsg),
			s("EZ", describeStmt(""), syncMsg),
			s("CZ", query("ROLLBACK")),
		},
		"a good Parse after a failed one": {
			s("EZ", bad, syncMsg),
			s("1Z", parse("", "SELECT 6 AS f"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
	})
}

// TestUnnamedPipelinedAfterFailedParseAsPostgres: a Describe or Bind of the unnamed
// statement in a request sent behind a failed Parse of it, before that Parse's answer
// came back, gets 26000 "unnamed prepared statement does not exist" from PostgreSQL:
// the failed Parse left none. pgmux parsed the failed text again in front of it, and the
// client got the Parse's error a second time. Behind a Parse the server skips, it meets
// the statement before that Parse.
func TestUnnamedPipelinedAfterFailedParseAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	bad := parse("", "SELEC 1")
	sameUnnamedAsDirect(t, "unnpipe", map[string][]step{
		"describe behind a syntax error": {
			s("1Z", parse("", "SELECT 1 AS a"), syncMsg),
			s("EZEZ", bad, syncMsg, describeStmt(""), syncMsg),
		},
		"bind behind an analysis error": {
			s("1Z", parse("", "SELECT 2 AS b"), syncMsg),
			s("EZEZ", parse("", "SELECT nosuch"), syncMsg, bind("", ""), execute("", 0), syncMsg),
		},
		"two requests later": {
			s("EZZEZ", bad, syncMsg, syncMsg, describeStmt(""), syncMsg),
		},
		"transaction block": {
			s("CZ", query("BEGIN")),
			s("1Z", parse("", "SELECT 3 AS c"), syncMsg),
			s("EZEZ", bad, syncMsg, describeStmt(""), syncMsg),
			s("CZ", query("ROLLBACK")),
		},
		"behind a skipped Parse": {
			s("1Z", parse("", "SELECT 5 AS e"), syncMsg),
			s("EZtTZ", bind("", "nosuch"), parse("", "SELECT 6 AS f"), syncMsg, describeStmt(""), syncMsg),
		},
		"a good Parse, described behind it": {
			s("EZ", bad, syncMsg),
			s("1ZtTZ2DCZ", parse("", "SELECT 4 AS d"), syncMsg, describeStmt(""), syncMsg,
				bind("", ""), execute("", 0), syncMsg),
		},
	})
}

// TestUnnamedAfterQueryAsPostgres: a simple Query drops the unnamed statement
// (exec_simple_query does, whatever the Query: one that runs, fails or is empty), so a
// Describe or Bind of it after one gets 26000 "unnamed prepared statement does not
// exist", inside a transaction block as outside. pgmux used to keep the statement's text
// and parse it again in front of them: the client got its description, or its rows.
func TestUnnamedAfterQueryAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	sameUnnamedAsDirect(t, "unnquery", map[string][]step{
		"describe after a Query": {
			s("1Z", parse("", "SELECT 1 AS a"), syncMsg),
			s("TDCZ", query("SELECT 2 AS b")),
			s("EZ", describeStmt(""), syncMsg),
		},
		"bind after a failed Query": {
			s("1tTZ", parse("", "SELECT 3 AS c"), describeStmt(""), syncMsg),
			s("EZ", query("SELECT 1/0")),
			s("EZ", bind("", ""), execute("", 0), syncMsg),
		},
		"describe after an empty Query": {
			s("1Z", parse("", "SELECT 4 AS d"), syncMsg),
			s("IZ", query("")),
			s("EZ", describeStmt(""), syncMsg),
		},
		"transaction block": {
			s("CZ", query("BEGIN")),
			s("1Z", parse("", "SELECT 5 AS e"), syncMsg),
			s("TDCZ", query("SELECT 6 AS f")),
			s("EZ", describeStmt(""), syncMsg),
			s("EZ", bind("", ""), execute("", 0), syncMsg),
			s("CZ", query("ROLLBACK")),
		},
		"the next Parse is the client's": {
			s("1Z", parse("", "SELECT 7 AS g"), syncMsg),
			s("TDCZ", query("SELECT 9")),
			s("1Z", parse("", "SELECT 8 AS h"), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
	})
}

// TestUnnamedBesideNamedAsPostgres: the client's named statements do not touch its
// unnamed one. In prepared_statement_mode = unnamed pgmux sends a named statement's
// Parse as a Parse of the server's unnamed statement; a Bind or Describe of the
// client's unnamed statement behind it, in the same request, used to reach that one:
// the named statement's rows and description.
func TestUnnamedBesideNamedAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	sameUnnamedAsDirect(t, "unnnamed", map[string][]step{
		"bind behind a named Parse": {
			s("112DCZ", parse("", "SELECT 'unnamed' AS u"), parse("n1", "SELECT 'named' AS n"),
				bind("", ""), execute("", 0), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
			s("3Z", closeStmt("n1"), syncMsg),
		},
		"describe behind a named Parse": {
			s("11tTZ", parse("", "SELECT 'unnamed' AS u"), parse("n2", "SELECT 'named' AS n"),
				describeStmt(""), syncMsg),
			s("3Z", closeStmt("n2"), syncMsg),
		},
		"bind behind a named Bind": {
			s("1Z", parse("n3", "SELECT 'named' AS n"), syncMsg),
			s("12DC2DCZ", parse("", "SELECT 'unnamed' AS u"), bind("", "n3"), execute("", 0),
				bind("", ""), execute("", 0), syncMsg),
			s("3Z", closeStmt("n3"), syncMsg),
		},
	})
}
