package prepared

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// dialRaw opens a protocol-level client to a URL (pgmux or PostgreSQL itself).
func dialRaw(t testing.TB, url string) *raw {
	t.Helper()
	pc, err := pgconn.Connect(ctx(t), url)
	require.NoError(t, err)
	hc, err := pc.Hijack()
	require.NoError(t, err)
	t.Cleanup(func() { _ = hc.Conn.Close() })
	return &raw{t: t, hc: hc, fe: hc.Frontend}
}

// transcript sends msgs and reads until as many ReadyForQuery as the Syncs and Queries
// sent, returning every message as it was on the wire, and their kinds.
func (r *raw) transcript(msgs ...pgproto3.FrontendMessage) ([][]byte, string) {
	r.t.Helper()
	want := 0
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			want++
		}
	}
	r.send(msgs...)
	var out [][]byte
	var kinds strings.Builder
	for want > 0 {
		m := r.recv()
		b, err := m.Encode(nil)
		require.NoError(r.t, err)
		out = append(out, b)
		kinds.WriteByte(kindOf(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			want--
		}
	}
	return out, kinds.String()
}

func query(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }

// step is one request and the message kinds PostgreSQL answers it with.
type step struct {
	msgs []pgproto3.FrontendMessage
	want string // kinds, as raw.expect spells them
}

// sameAsDirect runs the steps on a direct connection and through pgmux and requires the
// same bytes back from both, step by step.
func sameAsDirect(t *testing.T, m *mux, db string, steps []step) {
	t.Helper()
	direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	pooled := dialRaw(t, m.url(db))
	// Another client on the same servers, so pgmux's statements and links move around.
	other := m.raw(t, db)
	sameAnswers(t, direct, pooled, steps, func() { require.Equal(t, []string{"1"}, other.query("SELECT 1")) })
}

// sameAnswers runs the steps on direct and on pooled and requires the same bytes back
// from both, step by step, calling between after each.
func sameAnswers(t *testing.T, direct, pooled *raw, steps []step, between func()) {
	t.Helper()
	for i, s := range steps {
		want, kinds := direct.transcript(s.msgs...)
		require.Equal(t, s.want, kinds, "step %d directly", i)
		got, gotKinds := pooled.transcript(s.msgs...)
		require.Equal(t, kinds, gotKinds, "step %d through pgmux", i)
		for j := range want {
			require.Equal(t, string(want[j]), string(got[j]), "step %d message %d (%c)", i, j, kinds[j])
		}
		between()
	}
}

// TestStatementNamesAsPostgres checks PostgreSQL's answers for statement names, byte for
// byte against a direct connection: 42P05 for a name that exists, 26000 for one that
// does not, Close of a missing one, names freed by failed Parses, DISCARD ALL and
// DEALLOCATE, SQL PREPARE/EXECUTE/DEALLOCATE sharing the namespace, errors in the
// middle of pipelines and in transactions.
func TestStatementNamesAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 3})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"duplicate Parse in a pipeline": {
			s("1tTZ", parse("a", "SELECT 1::int"), describeStmt("a"), syncMsg),
			s("12DC1EZ", parse("b", "SELECT $1::int * 2"), bind("", "b", "21"), execute("", 0),
				parse("c", "SELECT 3"), parse("a", "SELECT 3"), bind("", "a"), execute("", 0), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg), // still the first
			s("2DCZ", bind("", "c"), execute("", 0), syncMsg),
		},
		"duplicate Parse of bad SQL reports the SQL first": {
			s("1Z", parse("a", "SELECT 1"), syncMsg),
			s("EZ", parse("a", "SELECT nosuchcolumn"), describeStmt("a"), syncMsg),
			s("EZ", parse("a", "SELECT 2"), describeStmt("a"), syncMsg),
		},
		"duplicate Parse in a transaction aborts it": {
			s("1Z", parse("a", "SELECT 1"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", parse("a", "SELECT 2"), syncMsg),
			s("EZ", parse("z", "SELECT 2"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"missing statement": {
			s("1EZ", parse("a", "SELECT 1"), bind("", "nope"), execute("", 0), parse("b", "SELECT 2"), syncMsg),
			s("EZ", describeStmt("nope"), syncMsg),
			s("EZ", bind("", "b"), execute("", 0), syncMsg), // skipped: never made
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("3Z", closeStmt("never"), syncMsg),
		},
		"failed Parse leaves the name free": {
			s("1tTEZ", parse("a", "SELECT 1"), describeStmt("a"), parse("bad", "SELEC 1"), parse("later", "SELECT 2"), syncMsg),
			s("1tTZ", parse("bad", "SELECT 3"), describeStmt("bad"), syncMsg),
			s("1tTZ", parse("later", "SELECT 4"), describeStmt("later"), syncMsg),
			s("2DCZ", bind("", "bad"), execute("", 0), syncMsg),
		},
		"DISCARD ALL and DEALLOCATE ALL free every name": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZ", query("DISCARD ALL")),
			s("1tTZ", parse("a", "SELECT 2"), describeStmt("a"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("DEALLOCATE ALL")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("1tTZ", parse("a", "SELECT 3"), describeStmt("a"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("DISCARD ALL")), // not in a transaction block: nothing freed
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"SQL DEALLOCATE": {
			s("EZ", query("DEALLOCATE nope")),
			s("EZ", query("DEALLOCATE PREPARE nope")),
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZ", query("DEALLOCATE a")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("EZ", query("DEALLOCATE a")),
			s("1Z", parse("a", "SELECT 2"), syncMsg),
		},
		"SQL PREPARE and EXECUTE share the namespace": {
			s("CZ", query("PREPARE q (int, text) AS SELECT $1 * 2, $2 || '!'")),
			s("TDCZ", query("EXECUTE q(21, 'hi')")),
			s("EZ", query("PREPARE q AS SELECT 1")),
			s("EZ", parse("q", "SELECT 1"), syncMsg),
			s("2DCZ", bind("", "q", "5", "x"), execute("", 0), syncMsg),
			s("tTZ", describeStmt("q"), syncMsg),
			s("1Z", parse("p", "SELECT $1::int + 1"), syncMsg),
			s("TDCZ", query("EXECUTE p(41)")),
			s("EZ", query("PREPARE p AS SELECT 2")),
			s("CZ", query("DEALLOCATE PREPARE q")),
			s("EZ", query("EXECUTE q(1, 'a')")),
			s("CZ", query(`PREPARE "Q" AS SELECT 'quoted'`)),
			s("TDCZ", query(`EXECUTE "Q"`)),
			s("EZ", query("EXECUTE q")),
		},
		"SQL errors read as PostgreSQL's": {
			s("EZ", query("PREPARE bad AS SELECT nosuchcolumn")),
			s("EZ", query("EXECUTE bad")),
			s("CZ", query("PREPARE w (int) AS SELECT $1")),
			s("EZ", query("EXECUTE w(1, 2)")),
			s("EZ", query("EXECUTE w('x')")),
			s("EZ", query("/* c */ PREPARE w AS SELECT nosuchcolumn")),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", query("PREPARE inabort AS SELECT 1")),
			s("EZ", query("DEALLOCATE w")),
			s("CZ", query("ROLLBACK")),
			s("EZ", query("EXECUTE inabort")),
			s("TDCZ", query("EXECUTE w(7)")),
			s("CZ", query("BEGIN")),
			s("CZ", query("PREPARE intx AS SELECT 'tx'")),
			s("CZ", query("ROLLBACK")), // PREPARE is not transactional
			s("TDCZ", query("EXECUTE intx")),
		},
		"reserved words are no statement names": {
			s("EZ", query("PREPARE all AS SELECT 1")),
			s("EZ", query("PREPARE select AS SELECT 1")),
			s("CZ", query(`PREPARE "all" AS SELECT 'quoted'`)),
			s("EZ", query("EXECUTE all")),
			s("TDCZ", query(`EXECUTE "all"`)),
			s("CZ", query(`PREPARE "select" AS SELECT 2`)),
			s("EZ", query("EXECUTE select")),
			s("EZ", query("DEALLOCATE select")),
			s("TDCZ", query(`EXECUTE "select"`)),
		},
		"pipelined SQL statements": {
			s("CZTDCZEZTDCZ", query("PREPARE pp (int) AS SELECT $1 * 3"), query("EXECUTE pp(2)"), query("SELECT 1/0"), query("EXECUTE pp(3)")),
			s("1tTZCZEZ", parse("e1", "SELECT 1"), describeStmt("e1"), syncMsg, query("DEALLOCATE e1"), query("EXECUTE e1")),
			s("CZEZTDCZ", query(`PREPARE "MixedCase" AS SELECT 'mc'`), query("DEALLOCATE mixedcase"), query(`EXECUTE "MixedCase"`)),
		},
		"pipelined PREPARE, an error and ROLLBACK": {
			// PREPARE is not transactional: p2 outlives the failed transaction, and
			// pgmux's hidden PREPARE of it that the failed transaction refused is
			// prepared again in the next request.
			s("CZCZEZEZCZTDCZ", query("BEGIN"), query("PREPARE p2 AS SELECT 2"), query("EXECUTE bad"),
				query("EXECUTE p2"), query("ROLLBACK"), query("EXECUTE p2")),
			s("TDCZ", query("EXECUTE p2")),
			s("CZ", query("PREPARE q AS SELECT 7")),
			// pgmux's hidden preparation of q for the Bind is skipped after the error;
			// the next request prepares it again.
			s("EZ2DCZ", bind("", "nope"), execute("", 0), bind("", "q"), execute("", 0), syncMsg,
				bind("", "q"), execute("", 0), syncMsg),
			s("CTDCZEZEZCZTDCZ", query("BEGIN; SELECT 1"), query("SELECT 1/0"), query("EXECUTE q"),
				query("ROLLBACK"), query("EXECUTE q")),
		},
		"DISCARD ALL and DEALLOCATE ALL by the server's answer": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZEZCZ", query("BEGIN"), query("DISCARD ALL"), query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("EZ", query("SELECT 1/0; DEALLOCATE ALL")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("TDCEZ", query("SELECT 1; DISCARD ALL")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZCZ", query("DEALLOCATE ALL"), query("PREPARE a AS SELECT 5")),
			s("TDCZ", query("EXECUTE a")),
			s("CZ1Z", query("DISCARD ALL"), parse("a", "SELECT 6"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CEZ", query("DEALLOCATE ALL; SELECT 1/0")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("PREPARE b AS SELECT 8")),
			s("CZEZ", query("DEALLOCATE ALL"), query("EXECUTE b")),
		},
		"EXPLAIN EXECUTE": {
			s("CZ", query("PREPARE ex (int) AS SELECT $1 + 1")),
			s("TDCZ", query("EXPLAIN (COSTS OFF) EXECUTE ex(1)")),
			s("TDDCZ", query("explain verbose execute ex(2)")),
			s("EZ", query("EXPLAIN (COSTS OFF) EXECUTE ex('x')")),
			s("EZ", query("EXPLAIN EXECUTE nope")),
			s("CZ", query("DEALLOCATE ex")),
			s("EZ", query("EXPLAIN (COSTS OFF) EXECUTE ex(1)")),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "names")
			sameAsDirect(t, m, db, steps)
		})
	}
}

var _ = context.Background
var _ = fmt.Sprint

// TestClearIgnoredAfterError: after an error in an extended-protocol batch PostgreSQL
// ignores everything up to the Sync, a DEALLOCATE ALL Query too: the client keeps its
// statements, and a Parse behind it is not waited on (one ReadyForQuery, for the Sync).
func TestClearIgnoredAfterError(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := database(t, m.pg, "ignored")
	for name, r := range map[string]*raw{"direct": dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db)), "pgmux": m.raw(t, db)} {
		r.send(parse("a", "SELECT 9"), syncMsg)
		r.expect("1Z")
		for i := 0; i < 5; i++ {
			r.send(parse("bad", "SELEC 1"), query("DEALLOCATE ALL"), parse("a", "SELECT 10"), syncMsg)
			r.expect("EZ")
			r.send(bind("", "a"), execute("", 0), syncMsg)
			msgs := r.expect("2DCZ")
			require.Equal(t, "9", string(msgs[1].(*pgproto3.DataRow).Values[0]), "%s round %d", name, i)
		}
	}
}

// TestDeferredParseFailureFreesName: a Parse and Sync with no server linked is answered by
// pgmux (deferred.go), and the statement is checked on the next server the client links:
// its Bind then gets PostgreSQL's 26000 for a statement whose Parse failed; from then on
// the name is free, as it always was on PostgreSQL, and the client can prepare it again.
func TestDeferredParseFailureFreesName(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := database(t, m.pg, "deferred")
	r := m.raw(t, db)
	r.send(parse("p", "SELEC 1"), syncMsg)
	r.expect("1Z")
	r.send(bind("", "p"), execute("", 0), syncMsg)
	e := errorOf(t, r.expect("EZ")[0])
	require.Equal(t, "26000", e.Code)
	require.Equal(t, `prepared statement "p" does not exist`, e.Message)
	r.send(parse("p", "SELECT 'again'::text"), syncMsg)
	r.expect("1Z")
	require.Equal(t, "again", r.run("p"))
	r.send(parse("p", "SELECT 1"), bind("", "p"), execute("", 0), syncMsg)
	require.Equal(t, "42P05", errorOf(t, r.expect("EZ")[0]).Code)
}
