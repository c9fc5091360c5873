package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtendedClearsAsPostgres: DISCARD ALL, DEALLOCATE ALL and DEALLOCATE name sent
// with the extended protocol (Parse of the text, Bind, Execute) act on the client's
// statement names exactly when PostgreSQL's do, byte for byte against a direct
// connection: when the server completes the Execute, not when it fails, is skipped after
// an error, or refused in a transaction block; DEALLOCATE is not undone by ROLLBACK.
func TestExtendedClearsAsPostgres(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testExtendedClears(t, mode, startMux(t, setup{poolSize: 3, mode: mode})) })
	}
}

func testExtendedClears(t *testing.T, mode string, m *mux) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	ext := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", ""), execute("", 0)}
	}
	cat := joinMsgs
	one := func(m ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage { return m }
	sync := one(syncMsg)
	cases := map[string][]step{
		"DISCARD ALL": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("12CZ", cat(ext("DISCARD ALL"), sync)...),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("1Z", parse("a", "SELECT 2"), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"DEALLOCATE ALL then Parse in one pipeline": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("12C12DCZ", cat(ext("DEALLOCATE ALL"), one(parse("a", "SELECT 3"), bind("", "a"), execute("", 0)), sync)...),
		},
		"in a transaction block": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZ", query("BEGIN")),
			s("12EZ", cat(ext("DISCARD ALL"), sync)...),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("BEGIN")),
			s("12CZ", cat(ext("DEALLOCATE ALL"), sync)...),
			s("CZ", query("ROLLBACK")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"skipped after an error": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("EZ", cat(one(parse("bad", "SELEC 1")), ext("DEALLOCATE ALL"), sync)...),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("12EZ", cat(ext("SELECT 1/g FROM generate_series(0, 0) g"), ext("DEALLOCATE ALL"), sync)...),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("12DC12EZ", cat(ext("SELECT 1"), ext("DISCARD ALL"), sync)...),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"DEALLOCATE name": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("1tTZ", parse("b", "SELECT 2"), describeStmt("b"), syncMsg),
			s("12CZ", cat(ext("DEALLOCATE a"), sync)...),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
			s("12EZ", cat(ext("DEALLOCATE a"), sync)...),
			s("12CZ", cat(ext("DEALLOCATE PREPARE b"), sync)...),
			s("12EZ", cat(ext("deallocate prepare b"), sync)...),
			s("1Z", parse("a", "SELECT 4"), syncMsg),
			s("12C1Z", cat(ext("DEALLOCATE a"), one(parse("a", "SELECT 5")), sync)...),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"DEALLOCATE name skipped or failed": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("12EZ", cat(ext("SELECT 1/g FROM generate_series(0, 0) g"), ext("DEALLOCATE a"), sync)...),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", cat(ext("DEALLOCATE a"), sync)...),
			s("CZ", query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", query("BEGIN")),
			s("12CZ", cat(ext("DEALLOCATE a"), sync)...),
			s("CZ", query("ROLLBACK")), // not transactional
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"named DEALLOCATE statement": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("1tnZ", parse("d", "DEALLOCATE a"), describeStmt("d"), syncMsg),
			s("2nCZ", bind("", "d"), describePortal(""), execute("", 0), syncMsg),
			s("2EZ", bind("", "d"), execute("", 0), syncMsg),
			s("1Z", parse("a", "SELECT 2"), syncMsg),
			s("2CZ", bind("", "d"), execute("", 0), syncMsg),
			s("CZ", query("PREPARE a AS SELECT 3")),
			s("2CZ", bind("", "d"), execute("", 0), syncMsg),
			s("EZ", query("EXECUTE a")),
		},
		"pgx ExecParams": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("12nCZ", parse("", "DEALLOCATE a"), bind("", ""), describePortal(""), execute("", 0), syncMsg),
			s("12nEZ", parse("", "DEALLOCATE a"), bind("", ""), describePortal(""), execute("", 0), syncMsg),
			s("1Z", parse("a", "SELECT 2"), syncMsg),
			s("12nCZ", parse("", "DISCARD ALL"), bind("", ""), describePortal(""), execute("", 0), syncMsg),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"portal executed later in a transaction": {
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZ", query("BEGIN")),
			s("12Z", parse("", "DEALLOCATE a"), bind("p", ""), syncMsg),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZ", execute("p", 0), syncMsg),
			s("CZ", query("COMMIT")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		},
		"SQL PREPARE then extended DEALLOCATE": {
			s("CZ", query("PREPARE q AS SELECT 1")),
			s("12CZ", cat(ext("DEALLOCATE q"), sync)...),
			s("EZ", query("EXECUTE q")),
		},
	}
	if mode == "cache" {
		// SQL PREPARE/EXECUTE/DEALLOCATE sent as a Query are rewritten in cache mode only.
		cases["pipelined Queries: DEALLOCATE in a failed transaction"] = []step{
			s("1tTZ", parse("a", "SELECT 1"), describeStmt("a"), syncMsg),
			s("CZEZEZCZ", query("BEGIN"), query("SELECT 1/0"), query("DEALLOCATE a"), query("ROLLBACK")),
			s("2DCZ", bind("", "a"), execute("", 0), syncMsg),
			s("CZEZ", query("DEALLOCATE a"), query("DEALLOCATE a")),
			s("EZ", bind("", "a"), execute("", 0), syncMsg),
		}
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "extclear")
			sameAsDirect(t, m, db, steps)
		})
	}
}
