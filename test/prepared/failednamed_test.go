package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestFailedTransactionNamedAsPostgres: named statements the server has under pgmux's
// names (cache mode) or never has (unnamed mode: each use rewritten to the unnamed
// statement), used in a failed transaction by Parse, Bind,
// Describe, Execute, Close and Sync in many orders, get PostgreSQL's answers byte for
// byte: 25P02 from the message PostgreSQL refuses, a Describe of a statement without
// rows answered (ParameterDescription, NoData), a wrong parameter count's 08P01, a
// ROLLBACK's messages run, the rest skipped until Sync, and the statements usable after
// ROLLBACK. In unnamed mode a Describe there of one that returns rows, and a Bind
// pipelined behind the request that fails the transaction, get the 25P02 of pgmux's Parse
// in front of them (routine and line fields exec_parse_message's: see failedtx.go)
// (loose cases: rows); pgmux used to answer every Bind and Describe there that way, so a
// Describe of an INSERT got an error where PostgreSQL sends its parameter types, and a
// Bind with the wrong parameter count 25P02 where PostgreSQL says 08P01.
func TestFailedTransactionNamedAsPostgres(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, mode: mode})
			failedNamedAsPostgres(t, m, mode == "unnamed")
		})
	}
}

func failedNamedAsPostgres(t *testing.T, m *mux, unnamed bool) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	warm := s("1tT1tn1tn2DC2CZ", parse("sel", "SELECT $1::int AS v"), describeStmt("sel"),
		parse("ins", "INSERT INTO t VALUES ($1)"), describeStmt("ins"), parse("rb", "ROLLBACK"), describeStmt("rb"),
		bind("", "sel", "1"), execute("", 0), bind("", "ins", "1"), execute("", 0), syncMsg)
	fail := s("CZEZ", query("BEGIN"), query("SELECT 1/0"))
	rollback := s("CZ", query("ROLLBACK"))
	use := s("2DC2CZ", bind("", "sel", "9"), execute("", 0), bind("p", "ins", "9"), execute("p", 0), syncMsg)
	for _, c := range []struct {
		name         string
		failed, then []step // in the failed transaction; after its ROLLBACK
		rows         bool   // in unnamed mode, answers that differ in routine and line fields only
	}{
		{name: "describe, no rows", failed: []step{s("tnZ", describeStmt("ins"), syncMsg),
			s("tntnZ", describeStmt("ins"), describeStmt("rb"), syncMsg)}},
		{name: "describe, rows", failed: []step{s("EZ", describeStmt("sel"), syncMsg)}, rows: true},
		{name: "describe, then rows", failed: []step{s("tnEZ", describeStmt("ins"), describeStmt("sel"),
			bind("", "ins", "3"), syncMsg)}, rows: true},
		{name: "bind, describe, execute", failed: []step{s("EZ", bind("p", "sel", "2"), describePortal("p"), execute("p", 0), syncMsg),
			s("EZ", bind("", "ins", "2"), execute("", 0), syncMsg)}},
		{name: "bind, wrong count", failed: []step{s("EZ", bind("", "ins"), execute("", 0), syncMsg),
			s("EZ", bind("", "sel", "1", "2"), syncMsg)}},
		{name: "parse", failed: []step{s("EZ", parse("new", "SELECT 5"), describeStmt("new"), syncMsg)},
			then: []step{s("EZ", bind("", "new"), execute("", 0), syncMsg)}},
		{name: "parse of a name in use", failed: []step{s("EZ", parse("sel", "SELECT 6"), syncMsg)}},
		{name: "a ROLLBACK's statement", failed: []step{s("tn2nCZ", describeStmt("rb"), bind("", "rb"), describePortal(""),
			execute("", 0), syncMsg), fail}},
		{name: "close", failed: []step{s("3Z", closeStmt("sel"), syncMsg)},
			then: []step{s("EZ", bind("", "sel", "1"), execute("", 0), syncMsg), s("1Z", parse("sel", "SELECT $1::int AS v"), syncMsg)}},
		{name: "pipelined", failed: []step{s("EZtnZEZtnZ", describeStmt("sel"), syncMsg, describeStmt("ins"), syncMsg,
			bind("", "ins", "1"), execute("", 0), syncMsg, describeStmt("rb"), syncMsg)}, rows: true},
		{name: "pipelined behind the failing query", failed: []step{s("CZCZEZtnZ", query("ROLLBACK"), query("BEGIN"),
			query("SELECT 1/0"), describeStmt("ins"), syncMsg)}},
		{name: "pipelined behind the failing query, then rows", failed: []step{s("CZCZEZEZEZ", query("ROLLBACK"), query("BEGIN"),
			query("SELECT 1/0"), describeStmt("sel"), syncMsg, bind("", "ins", "1"), syncMsg)}, rows: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := database(t, m.pg, "failednamed", "CREATE TABLE t (a int)")
			steps := append([]step{warm, fail}, c.failed...)
			steps = append(append(append(steps, rollback), c.then...), use)
			if c.rows && unnamed {
				sameAnswersLoose(t, dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db)), dialRaw(t, m.url(db)), steps)
				return
			}
			sameOnOneServer(t, m, db, steps)
		})
	}
}
