package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestExtendedPrepareAsPostgres: SQL PREPARE sent with the extended protocol (a Parse of
// "PREPARE p AS ...", unnamed as pgx's QueryExecModeExec and JDBC send it, or named as
// pgx's statement cache does, then Bind and Execute) answers byte for byte as on a
// direct connection, and p is then the client's on whichever server it gets: EXECUTE p
// in a Query or in a Parse, Describe p, a second PREPARE p (42P05), DEALLOCATE p; its
// errors at the client's positions; skipped after an error or refused in a failed
// transaction, it makes nothing. The client is never pinned (cache mode).
func TestExtendedPrepareAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 3, mode: "cache", extra: []string{"admin_users = " + pgtest.AppUser}})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	ext := func(sql string, params ...string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", "", params...), describePortal(""), execute("", 0), syncMsg}
	}
	bare := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{parse("", sql), bind("", ""), execute("", 0)}
	}
	cat := joinMsgs
	sync := []pgproto3.FrontendMessage{syncMsg}
	cases := map[string][]step{
		"unnamed PREPARE, then EXECUTE both ways": {
			s("12nCZ", ext("PREPARE p (int) AS SELECT $1 * 2 AS doubled")...),
			s("TDCZ", query("EXECUTE p(21)")),
			s("12TDCZ", ext("EXECUTE p(4)")...),
			s("tTZ", describeStmt("p"), syncMsg),
			s("2DCZ", bind("", "p", "8"), execute("", 0), syncMsg),
			s("12nEZ", ext("PREPARE p AS SELECT 2")...),
			s("EZ", query("PREPARE p AS SELECT 3")),
			s("EZ", parse("p", "SELECT 3"), syncMsg),
			s("CZ", query("DEALLOCATE p")),
			s("EZ", query("EXECUTE p(1)")),
			s("12nCZ", ext("prepare P as select 'again'")...),
			s("TDCZ", query("EXECUTE p")),
			s("12nCZ", ext("DEALLOCATE p")...),
			s("12nEZ", ext("EXECUTE p")...),
		},
		"named PREPARE statement executed again": {
			s("1tnZ", parse("s", "PREPARE q (int, text) AS SELECT $1 + 1, $2 || '!'"), describeStmt("s"), syncMsg),
			s("2nCZ", bind("", "s"), describePortal(""), execute("", 0), syncMsg),
			s("2EZ", bind("", "s"), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE q(1, 'a')")),
			s("CZ", query("DEALLOCATE q")),
			s("2CZ", bind("", "s"), execute("", 0), syncMsg),
			s("12TDCZ", ext("EXECUTE q(2, 'b')")...),
		},
		"errors at the client's positions": {
			s("EZ", parse("", "PREPARE p AS SELEC 1"), syncMsg),
			s("EZ", parse("s", "PREPARE p AS SELECT 1 +"), describeStmt("s"), syncMsg),
			s("12nEZ", ext("PREPARE p AS SELECT nosuch")...),
			s("12nEZ", ext("PREPARE p (nosuchtype) AS SELECT $1")...),
			s("12nEZ", ext("PREPARE p AS SELECT $1 + 'x'::int, $2 ")...),
			s("EZ", query("EXECUTE p")),
			s("1Z", parse("p", "SELECT 1"), syncMsg),
		},
		"skipped after an error, refused in a failed transaction": {
			s("12EZ", cat(bare("SELECT 1/g FROM generate_series(0, 0) g"), bare("PREPARE p AS SELECT 1"), sync)...),
			s("EZ", query("EXECUTE p")),
			s("CZ", query("BEGIN")),
			s("EZ", query("SELECT 1/0")),
			s("EZ", ext("PREPARE p AS SELECT 1")...),
			s("CZ", query("ROLLBACK")),
			s("EZ", query("EXECUTE p")),
			s("1tTZ", parse("p", "SELECT 5"), describeStmt("p"), syncMsg),
		},
		"not undone by ROLLBACK": {
			s("CZ", query("BEGIN")),
			s("12nCZ", ext("PREPARE p AS SELECT 6")...),
			s("CZ", query("ROLLBACK")),
			s("TDCZ", query("EXECUTE p")),
		},
		"pipelined with its EXECUTE": {
			s("12C12DC12EZ", cat(bare("PREPARE p AS SELECT 7"), bare("EXECUTE p"), bare("PREPARE p AS SELECT 8"), sync)...),
			s("TDCZ", query("EXECUTE p")),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "extprep")
			sameAsDirect(t, m, db, steps)
		})
	}

	// pgx as apps use it: QueryExecModeExec (unnamed) and the statement cache (named);
	// the client is not pinned.
	db := database(t, m.pg, "extprep")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		conn := m.connect(t, db, mode)
		rows, err := conn.Query(bgCtx(), "PREPARE twice (int) AS SELECT $1 * 2")
		require.NoError(t, err)
		rows.Close()
		require.NoError(t, rows.Err())
		var v int
		require.NoError(t, conn.QueryRow(bgCtx(), "EXECUTE twice(21)").Scan(&v))
		require.Equal(t, 42, v)
		adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
		for _, r := range showText(t, adm, "SHOW CLIENTS") {
			if r["database"] == db {
				require.Empty(t, r["pin_reason"], "client pinned (%v): %v", mode, r)
			}
		}
	}
}

// joinMsgs is the messages of parts, in order.
func joinMsgs(parts ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
