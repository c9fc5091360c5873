package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestMultiStatementPrepare: a Query of several statements with SQL PREPAREs makes each
// name whose PREPARE the server completes the client's, as in PostgreSQL: a protocol
// Parse of it gets 42P05, Bind, Describe and EXECUTE run the SQL statement, DEALLOCATE,
// DEALLOCATE ALL and DISCARD ALL free it. A PREPARE the Query never reached (an error
// before it), one a DEALLOCATE in the Query undid and one a DEALLOCATE ALL after it
// cleared leave the name free; one after a DEALLOCATE ALL or a DEALLOCATE of its name
// is kept. PREPARE is not transactional: the statement outlives the failed Query, and a
// ROLLBACK.
//
// In cache mode pgmux sent such a Query as written and pinned the client to the server
// holding the statements under the client's names, without recording them: a Parse of
// such a name got ParseComplete ("1Z" for "EZ"), and Bind and EXECUTE then ran the
// protocol statement. Its statements are now pgmux's, prepared where they run, as for a
// Query of one PREPARE: with one server, and between steps another client that runs on
// it, finds no statement left there under a client's name and deallocates pgmux's, the
// client is not pinned. In unnamed mode (pinned, the statements stay on its server under
// its names) a PREPARE after a DEALLOCATE of its name or a DEALLOCATE ALL in the same
// Query was not recorded ("1Z" for "EZ").
func TestMultiStatementPrepare(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	cases := map[string][]step{
		"two PREPAREs": {
			s("CCZ", query("PREPARE a AS SELECT 1; PREPARE b (int) AS SELECT $1 * 2")),
			s("EZ", parse("a", "SELECT 'proto'"), syncMsg),
			s("EZ", parse("b", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE a")),
			s("TDCZ", query("EXECUTE b(21)")),
			s("tTZ", describeStmt("b"), syncMsg),
			s("TDCTDCZ", query("EXECUTE b(1); EXECUTE a")),
			s("CZ", query("DEALLOCATE a")),
			s("EZ", query("EXECUTE a")),
			s("CEZ", query("DEALLOCATE b; DEALLOCATE a")),
			s("1Z", parse("a", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE a")),
			s("1Z", parse("b", "SELECT 'proto'"), syncMsg),
		},
		"an error in the Query": {
			s("CEZ", query("PREPARE c AS SELECT 3; PREPARE d AS SELECT * FROM nosuchtable; PREPARE e AS SELECT 5")),
			s("EZ", parse("c", "SELECT 'proto'"), syncMsg),
			s("1Z", parse("d", "SELECT 'proto'"), syncMsg),
			s("1Z", parse("e", "SELECT 'proto'"), syncMsg),
			s("TDCCEZ", query("SELECT 1; PREPARE h AS SELECT 8; SELECT 1/0")),
			s("EZ", parse("h", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "h"), execute("", 0), syncMsg),
			s("CEZ", query("PREPARE q AS SELECT 17; PREPARE q AS SELECT 18")),
			s("TDCZ", query("EXECUTE q")),
			s("1Z", parse("r", "SELECT 'proto'"), syncMsg),
			s("TDCEZ", query("SELECT 1; PREPARE r AS SELECT 19")),
			s("2DCZ", bind("", "r"), execute("", 0), syncMsg),
		},
		"in a transaction block": {
			s("CZCEZCZ", query("BEGIN"), query("PREPARE k AS SELECT 11; SELECT 1/0"), query("ROLLBACK")),
			s("EZ", parse("k", "SELECT 'proto'"), syncMsg),
			s("TDCZ", query("EXECUTE k")),
			s("CZCTDCZCZ", query("BEGIN"), query("PREPARE l AS SELECT 12; SELECT 1"), query("COMMIT")),
			s("TDCZ", query("EXECUTE l")),
			s("CZEZEZCZ", query("BEGIN"), query("SELECT 1/0"), query("PREPARE m AS SELECT 13; SELECT 1"), query("ROLLBACK")),
			s("1Z", parse("m", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "m"), execute("", 0), syncMsg),
		},
		"DEALLOCATE in the same Query": {
			s("CCCZ", query("PREPARE f AS SELECT 6; DEALLOCATE f; PREPARE g AS SELECT 7")),
			s("1Z", parse("f", "SELECT 'proto'"), syncMsg),
			s("EZ", parse("g", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "g"), execute("", 0), syncMsg),
			s("CCZ", query("DEALLOCATE g; PREPARE g AS SELECT 'g2'")),
			s("TDCZ", query("EXECUTE g")),
			s("EZ", parse("g", "SELECT 'proto'"), syncMsg),
			s("CCZ", query("PREPARE i AS SELECT 9; DEALLOCATE ALL")),
			s("1Z", parse("i", "SELECT 'proto'"), syncMsg),
			s("1Z", parse("g", "SELECT 'proto'"), syncMsg),
			s("CCZ", query("DEALLOCATE ALL; PREPARE n AS SELECT 14")),
			s("EZ", parse("n", "SELECT 'proto'"), syncMsg),
			s("TDCZ", query("EXECUTE n")),
			s("1Z", parse("i", "SELECT 'proto'"), syncMsg),
			s("CCZ", query("DEALLOCATE ALL; PREPARE i AS SELECT 'i2'")),
			s("2DCZ", bind("", "i"), execute("", 0), syncMsg),
			s("CCCZ", query("PREPARE w AS SELECT 22; DEALLOCATE w; PREPARE w AS SELECT 23")),
			s("TDCZ", query("EXECUTE w")),
			s("EZ", parse("w", "SELECT 'proto'"), syncMsg),
		},
		"DISCARD ALL": {
			s("CTDCZ", query("PREPARE t AS SELECT 20; SELECT 1")),
			s("CZ", query("DISCARD ALL")),
			s("1Z", parse("t", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "t"), execute("", 0), syncMsg),
			s("CEZ", query("PREPARE p AS SELECT 16; DISCARD ALL")),
			s("EZ", parse("p", "SELECT 'proto'"), syncMsg),
			s("TDCZ", query("EXECUTE p")),
			s("EZ", query("DISCARD ALL; PREPARE o AS SELECT 15")),
			s("1Z", parse("o", "SELECT 'proto'"), syncMsg),
		},
		"EXECUTE in the same Query": {
			s("CTDCZ", query("PREPARE u (int) AS SELECT $1 + 1; EXECUTE u(1)")),
			s("TDCTDCZ", query("EXECUTE u(2); SELECT 3")),
			s("2DCZ", bind("", "u", "4"), execute("", 0), syncMsg),
			s("EZ", parse("u", "SELECT 'proto'"), syncMsg),
		},
		"pipelined": {
			s("CTDCZEZ", query("PREPARE j AS SELECT 10; SELECT 1"), parse("j", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "j"), execute("", 0), syncMsg),
			s("CCZ1Z", query("DEALLOCATE j; PREPARE v AS SELECT 21"), parse("j", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "j"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE v")),
		},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, maxStmts: 5, mode: mode})
			for name, steps := range cases {
				t.Run(name, func(t *testing.T) {
					sameAsDirectShared(t, m, mode, database(t, m.pg, "multiprep"), steps)
				})
			}
		})
	}
}

// sameAsDirectShared is sameAsDirect through pgmux with one server (default_pool_size
// = 1) in cache mode, where the client must not be pinned: between steps another client
// runs on the same server, finds no statement under a client's name there and
// deallocates pgmux's (so the client's are prepared again where they run). In unnamed
// mode, where a client that PREPAREs is pinned and its statements stay on its server,
// it is sameAsDirect.
func sameAsDirectShared(t *testing.T, m *mux, mode, db string, steps []step) {
	t.Helper()
	if mode == "unnamed" {
		sameAsDirect(t, m, db, steps)
		return
	}
	direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	pooled := dialRaw(t, m.url(db))
	other := m.raw(t, db)
	sameAnswers(t, direct, pooled, steps, func() {
		// One server for both: the client is not pinned to a server of its own.
		require.Equal(t, other.query("SELECT pg_backend_pid()"), pooled.query("SELECT pg_backend_pid()"))
		left := other.query("SELECT count(*) FROM pg_prepared_statements WHERE name !~ '^pgmux_'")
		require.Equal(t, []string{"0"}, left, "statements under a client's name on the server")
		other.query("DEALLOCATE ALL")
	})
}

// TestMultiStatementPrepareWithCopy: a Query with a PREPARE and a COPY FROM STDIN. pgmux
// sends nothing behind such a Query (a Close there would reach the server in its
// copy-in and abort the COPY); the rows arrive and the statement runs.
func TestMultiStatementPrepareWithCopy(t *testing.T) {
	inModes(t, setup{poolSize: 1}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "multicopy", "CREATE TABLE t (v int)")
		r := m.raw(t, db)
		r.send(query("PREPARE cp AS SELECT count(*) FROM t; COPY t FROM STDIN"))
		r.expect("C")
		_, ok := r.recv().(*pgproto3.CopyInResponse)
		require.True(t, ok, "want CopyInResponse")
		r.send(&pgproto3.CopyData{Data: []byte("1\n2\n")}, &pgproto3.CopyDone{})
		got := r.expect("CZ")
		require.Equal(t, "COPY 2", string(got[0].(*pgproto3.CommandComplete).CommandTag))
		require.Equal(t, []string{"2"}, r.query("EXECUTE cp"))
	})
}
