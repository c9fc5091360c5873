package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// turn is one request of one of two clients.
type turn struct {
	who  int // 0: a, 1: b
	step step
}

// twoClients runs the turns on two direct connections and on two connections through
// pgmux, and requires the same bytes back, turn by turn.
func twoClients(t *testing.T, m *mux, db string, turns []turn) {
	t.Helper()
	url := m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db)
	direct := []*raw{dialRaw(t, url), dialRaw(t, url)}
	pooled := []*raw{dialRaw(t, m.url(db)), dialRaw(t, m.url(db))}
	for i, tu := range turns {
		t.Logf("turn %d, client %c", i, 'a'+tu.who)
		sameAnswers(t, direct[tu.who], pooled[tu.who], []step{tu.step}, func() {})
	}
}

// TestSQLPrepareLeavesNothingForOthers: two clients share one server (default_pool_size
// = 1), and each request is compared byte for byte with two direct connections. A Query
// that names a statement the client made with Parse gets a copy of it on the server under
// the client's name, closed after the Query, but not when the Query also PREPAREs that
// name: in unnamed mode (and in cache mode with a COPY) that PREPARE failed (42P05, a
// syntax error, a failed transaction) and the copy stayed on a server the client was not
// pinned to. The other client then got 42P05 for its own PREPARE x ("EZ" for "CZ") and
// ran the copy with EXECUTE x ("CZ" or the first client's row for its 26000). Such a
// copy is now closed after the Query; one that may stay (the Query deallocates the name
// before it PREPAREs it, and an error stopped it before the DEALLOCATE) keeps the client
// pinned, and the client's Close of the name removes it. A PREPARE that succeeds pins the
// client until its statements are gone (DEALLOCATE, Close), in a rolled back
// transaction too.
func TestSQLPrepareLeavesNothingForOthers(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, mode: mode})
			a := func(want string, msgs ...pgproto3.FrontendMessage) turn { return turn{0, step{msgs, want}} }
			b := func(want string, msgs ...pgproto3.FrontendMessage) turn { return turn{1, step{msgs, want}} }
			cases := map[string][]turn{
				"Parse then PREPARE fails 42P05, b PREPAREs": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("PREPARE x AS SELECT 'a2'")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					b("TDCZ", query("EXECUTE x")),
					a("2DCZ", bind("", "x"), execute("", 0), syncMsg),
				},
				"Parse then PREPARE syntax error, b EXECUTEs": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("PREPARE x AS SELEC 1")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
				},
				"EXECUTE then PREPARE, b EXECUTEs": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("TDCEZ", query("EXECUTE x; PREPARE x AS SELECT 2")),
					b("EZ", query("EXECUTE x")),
					b("EZ", query("DEALLOCATE x")),
				},
				"PREPARE then DEALLOCATE fails": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("PREPARE x AS SELECT 2; DEALLOCATE x")),
					b("EZ", query("EXECUTE x")),
				},
				"PREPARE fails in a transaction": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("CZ", query("BEGIN")),
					a("EZ", query("PREPARE x AS SELECT 2")),
					a("CZ", query("ROLLBACK")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					a("2DCZ", bind("", "x"), execute("", 0), syncMsg),
				},
				"PREPARE in a failed transaction": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("CZ", query("BEGIN")),
					a("EZ", query("SELECT 1/0")),
					a("EZ", query("PREPARE x AS SELECT 2")),
					a("CZ", query("ROLLBACK")),
					b("EZ", query("EXECUTE x")),
				},
				"error before DEALLOCATE and PREPARE": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("SELECT 1/0; DEALLOCATE x; PREPARE x AS SELECT 2")),
					a("CZ", query("CLOSE ALL")),
					b("EZ", query("EXECUTE x")),
					a("2DCZ", bind("", "x"), execute("", 0), syncMsg),
					a("TDCZ", query("EXECUTE x")),
					a("CZ", query("CLOSE ALL")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
				},
				"error before DEALLOCATE and PREPARE, then Close": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("SELECT 1/0; DEALLOCATE x; PREPARE x AS SELECT 2")),
					a("3Z", closeStmt("x"), syncMsg),
					a("EZ", query("EXECUTE x")),
					a("CZ", query("PREPARE x AS SELECT 3")),
					a("TDCZ", query("EXECUTE x")),
					b("EZ", query("EXECUTE x")),
				},
				"error before DEALLOCATE and PREPARE, with COPY": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("SELECT 1/0; DEALLOCATE x; PREPARE x AS SELECT 2; COPY t FROM STDIN")),
					a("CZ", query("CLOSE ALL")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					a("3Z", closeStmt("x"), syncMsg),
					a("EZ", query("EXECUTE x")),
				},
				"DEALLOCATE then PREPARE": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("CCZ", query("DEALLOCATE x; PREPARE x AS SELECT 2")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					b("TDCZ", query("EXECUTE x")),
					a("TDCZ", query("EXECUTE x")),
					a("CZ", query("DEALLOCATE x")),
					b("TDCZ", query("EXECUTE x")),
				},
				"PREPARE succeeds, b": {
					a("CZ", query("PREPARE x AS SELECT 'a'")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					b("1Z", parse("y", "SELECT 'b'"), syncMsg),
					a("TDCZ", query("EXECUTE x")),
					b("TDCZ", query("EXECUTE x")),
				},
				"PREPARE in rolled back transaction": {
					a("CZ", query("BEGIN")),
					a("CZ", query("PREPARE x AS SELECT 'a'")),
					a("CZ", query("ROLLBACK")),
					b("EZ", query("EXECUTE x")),
					b("1Z", parse("x", "SELECT 'b'"), syncMsg),
					b("2DCZ", bind("", "x"), execute("", 0), syncMsg),
					a("TDCZ", query("EXECUTE x")),
				},
				"PREPARE then DEALLOCATE, unpinned": {
					a("CZ", query("PREPARE x AS SELECT 'a'")),
					a("CZ", query("DEALLOCATE x")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
				},
				"PREPARE then Close, unpinned": {
					a("CZ", query("PREPARE x AS SELECT 'a'")),
					a("3Z", closeStmt("x"), syncMsg),
					a("CZ", query("CLOSE ALL")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
				},
				"extended PREPARE": {
					a("12CZ", parse("", "PREPARE x AS SELECT 'a'"), bind("", ""), execute("", 0), syncMsg),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					a("TDCZ", query("EXECUTE x")),
				},
				"extended PREPARE of a Parsed name fails": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("12EZ", parse("", "PREPARE x AS SELECT 2"), bind("", ""), execute("", 0), syncMsg),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
					a("2DCZ", bind("", "x"), execute("", 0), syncMsg),
				},
				"PREPARE fails before COPY": {
					a("1Z", parse("x", "SELECT 'a'"), syncMsg),
					a("EZ", query("PREPARE x AS SELECT 2; COPY t FROM STDIN")),
					b("EZ", query("EXECUTE x")),
					b("CZ", query("PREPARE x AS SELECT 'b'")),
				},
				"multi PREPARE then error": {
					a("CEZ", query("PREPARE x AS SELECT 'a'; SELECT 1/0")),
					b("EZ", query("EXECUTE x")),
					a("TDCZ", query("EXECUTE x")),
				},
			}
			for name, turns := range cases {
				t.Run(name, func(t *testing.T) {
					twoClients(t, m, database(t, m.pg, "cross", "CREATE TABLE t (a int)"), turns)
				})
			}
		})
	}
}
