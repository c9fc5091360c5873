package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtendedPrepareOfParsedName: SQL PREPARE x sent with the extended protocol (a
// Parse of "PREPARE x AS ...", unnamed or named, then Bind and Execute) answers as on a
// direct connection, byte for byte, in both modes. In unnamed mode, where the server runs
// such a PREPARE as written, the client's protocol statement x is on no server under its
// name, so the Execute succeeded ("12CZ" for PostgreSQL's "12EZ", 42P05) and a later
// EXECUTE x ran the new statement; and a name made so was not the client's for pgmux
// (a Parse of it got "1Z" for "EZ"). Between steps another client runs on the same
// servers (TestCopyQueryNamesTwoClients has two on one server).
func TestExtendedPrepareOfParsedName(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	ext := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", ""), execute("", 0), syncMsg}
	}
	bare := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", ""), execute("", 0)}
	}
	cases := map[string][]step{
		"unnamed PREPARE of a Parsed name": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("12EZ", ext("PREPARE x AS SELECT 2")...),
			s("2EZ", bind("", ""), execute("", 0), syncMsg), // the unnamed statement again
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE x")),
			s("CZ", query("DEALLOCATE x")),
			s("12CZ", ext("PREPARE x AS SELECT 3")...),
			s("TDCZ", query("EXECUTE x")),
		},
		"named PREPARE of a Parsed name": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("1Z", parse("s", "PREPARE x (int) AS SELECT $1"), syncMsg),
			s("2EZ", bind("", "s"), execute("", 0), syncMsg),
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
			s("3Z", closeStmt("x"), syncMsg),
			s("2CZ", bind("", "s"), execute("", 0), syncMsg),
			s("2EZ", bind("", "s"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE x(7)")),
		},
		"the statement's errors first": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("12EZ", ext("PREPARE x AS SELECT nosuch")...),
			s("12EZ", ext("PREPARE x AS SELECT 1 + 'z'::int")...),
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
		},
		"made by PREPARE, then Parsed": {
			s("12CZ", ext("PREPARE y AS SELECT 2")...),
			s("EZ", parse("y", "SELECT 'a'"), syncMsg),
			s("2DCZ", bind("", "y"), execute("", 0), syncMsg),
			s("tTZ", describeStmt("y"), syncMsg),
		},
		"pipelined": {
			s("12CEZ", joinMsgs(bare("PREPARE z AS SELECT 4"), []pgproto3.FrontendMessage{parse("z", "SELECT 'a'"), syncMsg})...),
			s("2DCZ", bind("", "z"), execute("", 0), syncMsg),
			s("112EZ", joinMsgs([]pgproto3.FrontendMessage{parse("w", "SELECT 'w'")}, bare("PREPARE w AS SELECT 5"), []pgproto3.FrontendMessage{syncMsg})...),
			s("2DCZ", bind("", "w"), execute("", 0), syncMsg),
		},
		"in a failed transaction": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", ext("PREPARE x AS SELECT 2")...),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
		},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 2, mode: mode})
			for name, steps := range cases {
				t.Run(name, func(t *testing.T) {
					sameAsDirect(t, m, database(t, m.pg, "extprepname"), steps)
				})
			}
		})
	}
}
