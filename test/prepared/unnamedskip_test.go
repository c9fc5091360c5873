package prepared

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestUnnamedSkippedParseAsPostgres: after an error PostgreSQL skips the request's
// messages up to its Sync, and a Parse of the unnamed statement it skips changes
// nothing: the client's unnamed statement is still the one before (none if it had
// none). Nor does a skipped Close of it. pgmux took the skipped Parse's text as the
// client's statement, and dropped it at a skipped Close.
func TestUnnamedSkippedParseAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	sameUnnamedAsDirect(t, "unnskip", map[string][]step{
		"behind a failed Bind": {
			s("1Z", parse("", "SELECT 1 AS a"), syncMsg),
			s("EZ", bind("", "nosuch"), parse("", "SELECT 2 AS b"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
		"behind a failed Execute": {
			s("12EZ", parse("", "SELECT 1/g AS z FROM generate_series(0, 0) g"), bind("", ""), execute("", 0),
				parse("", "SELECT 3 AS c"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"several behind a failed Execute": {
			s("12EZ", parse("", "SELECT 1/g AS y FROM generate_series(0, 0) g"), bind("", ""), execute("", 0),
				parse("", "SELECT 4 AS d"), bind("", ""), execute("", 0),
				parse("", "SELECT 5 AS e"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"behind a failed named Parse": {
			s("1Z", parse("", "SELECT 6 AS f"), syncMsg),
			s("EZ", parse("n1", "SELEC"), parse("", "SELECT 7 AS g"), parse("", "SELECT 8 AS h"), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
		"none before": {
			s("EZ", bind("", "nosuch"), parse("", "SELECT 9 AS i"), syncMsg),
			s("EZ", describeStmt(""), syncMsg),
		},
		"a skipped Close": {
			s("1Z", parse("", "SELECT 12 AS l"), syncMsg),
			s("EZ", bind("", "nosuch"), closeStmt(""), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"transaction block": {
			s("CZ", query("BEGIN")),
			s("1Z", parse("", "SELECT 15 AS n"), syncMsg),
			s("EZ", bind("", "nosuch"), parse("", "SELECT 16 AS o"), syncMsg),
			// Ended by a named statement: a Query would drop the unnamed one.
			s("12CZ", parse("rb", "ROLLBACK"), bind("", "rb"), execute("", 0), syncMsg),
			s("tTZ3Z", describeStmt(""), syncMsg, closeStmt("rb"), syncMsg),
		},
	})
}

// TestUnnamedSkippedQueryAsPostgres: a simple Query after an extended-protocol error,
// before the Sync, is skipped too (PostgreSQL answers nothing for it), so it does not
// drop the unnamed statement, as one that runs does. pgmux dropped it as it sent it.
func TestUnnamedSkippedQueryAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	inUnnamedSetups(t, "unnskipq", map[string][]step{
		"behind a failed Bind": {
			s("1Z", parse("", "SELECT 1 AS a"), syncMsg),
			s("EZ", bind("", "nosuch"), query("SELECT 2"), syncMsg),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"behind a failed Execute, then a Parse": {
			s("12EZ", parse("", "SELECT 1/g AS b FROM generate_series(0, 0) g"), bind("", ""), execute("", 0),
				query("SELECT 3"), parse("", "SELECT 4 AS c"), syncMsg),
			s("2EZ", bind("", ""), execute("", 0), syncMsg), // still the failing one
		},
		"one that runs": {
			s("1Z", parse("", "SELECT 5 AS d"), syncMsg),
			s("3TDCZZ", closeStmt("n"), query("SELECT 6"), syncMsg),
			s("EZ", describeStmt(""), syncMsg),
		},
	}, sameAsDirectAsWanted)
}

// sameAsDirectAsWanted is sameAsDirect for steps with a Query PostgreSQL skips, which
// gets no ReadyForQuery: each step reads as many messages as its want has.
func sameAsDirectAsWanted(t *testing.T, m *mux, db string, steps []step) {
	t.Helper()
	sameExchanges(t, dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db)), dialRaw(t, m.url(db)), steps)
}

// sameExchanges runs each step directly and through pooled, reading as many messages as
// its want has, and requires the same bytes back from both.
func sameExchanges(t *testing.T, direct, pooled *raw, steps []step) {
	t.Helper()
	for i, s := range steps {
		want, kinds := direct.read(len(s.want), s.msgs...)
		require.Equal(t, s.want, kinds, "step %d directly", i)
		got, gotKinds := pooled.read(len(s.want), s.msgs...)
		require.Equal(t, kinds, gotKinds, "step %d through pgmux", i)
		for j := range want {
			require.Equal(t, string(want[j]), string(got[j]), "step %d message %d (%c)", i, j, kinds[j])
		}
	}
}

// read sends msgs and reads n messages, returned as they were on the wire, and their
// kinds.
func (r *raw) read(n int, msgs ...pgproto3.FrontendMessage) ([][]byte, string) {
	r.t.Helper()
	r.send(msgs...)
	out := make([][]byte, 0, n)
	kinds := make([]byte, 0, n)
	for range n {
		m := r.recv()
		b, err := m.Encode(nil)
		require.NoError(r.t, err)
		out = append(out, b)
		kinds = append(kinds, kindOf(m))
	}
	return out, string(kinds)
}

// TestUnnamedSkippedPastSavedAsPostgres: a request of more Parses of the unnamed
// statement, each of another text, than pgmux keeps the statement before (64), then an
// error, and a Parse the server skips behind it: the client's statement is the last one
// that ran, as in PostgreSQL. pgmux had not kept it, and left the client none (26000).
// And an error earlier in such a request: the statement is the one before the skip.
func TestUnnamedSkippedPastSavedAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	var msgs []pgproto3.FrontendMessage
	want := ""
	for i := 1; i <= 150; i++ {
		msgs = append(msgs, parse("", fmt.Sprintf("SELECT %d AS c%d", i, i)), bind("", ""), execute("", 0))
		want += "12DC"
	}
	msgs = append(msgs, bind("", "nosuch"), parse("", "SELECT 0 AS z"), syncMsg)
	early := []pgproto3.FrontendMessage{parse("", "SELECT 1/(g-1) AS bad FROM generate_series(1, 1) g"), bind("", ""), execute("", 0)}
	for i := 1; i <= 150; i++ {
		early = append(early, parse("", fmt.Sprintf("SELECT %d AS e%d", i, i)), bind("", ""), execute("", 0))
	}
	early = append(early, syncMsg)
	var middle []pgproto3.FrontendMessage
	wantMiddle := ""
	for i := 1; i <= 150; i++ {
		text := fmt.Sprintf("SELECT %d AS m%d", i, i)
		if i == 100 {
			text = "SELECT 1/(g-1) AS bad FROM generate_series(1, 1) g"
		}
		middle = append(middle, parse("", text), bind("", ""), execute("", 0))
		if i < 100 {
			wantMiddle += "12DC"
		}
	}
	middle = append(middle, syncMsg)
	sameUnnamedAsDirect(t, "unnpast", map[string][]step{
		"150 statements": {
			s(want+"EZ", msgs...),
			s("tTZ", describeStmt(""), syncMsg),
			s("2DCZ", bind("", ""), execute("", 0), syncMsg),
		},
		"an error at the 100th of 150": {
			s(wantMiddle+"12EZ", middle...),
			s("tTZ", describeStmt(""), syncMsg),
		},
		"an error first, 150 statements skipped": {
			s("12EZ", early...),
			s("tTZ", describeStmt(""), syncMsg),
		},
	})
}
