package multihost

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestResetOfStartupValueInReadOnlyTransaction: a client that gave search_path,
// temp_tablespaces and statement_timeout at startup resets them (RESET, RESET ALL, SET
// ... TO DEFAULT; by simple Query or the extended protocol) in a read-only transaction
// whose BEGIN went alone to a standby, then switches it to read-write, or to
// serializable: on PostgreSQL the switch is allowed (RESET takes no snapshot), so the
// transaction moves to the primary with its settings and the write runs there. pgmux set
// the startup value again behind the reset with a DO block (RESET ALL, a list setting) or
// a SELECT (the extended protocol), whose snapshot made the server refuse the switch
// with 25001, on the standby or on the primary after the move. The same on the primary
// for a plain BEGIN, and a reset before or inside a read-only transaction still gives
// the startup values on the standby. Every answer and transaction status must be the
// primary's, and search_path's text too where the client wrote the list as SET does.
func TestResetOfStartupValueInReadOnlyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t,
		"CREATE TABLE rs (x int); GRANT ALL ON rs TO app; CREATE SCHEMA s1; GRANT ALL ON SCHEMA s1 TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	opts := `-c search_path=s1,\ public -c temp_tablespaces=pg_default -c statement_timeout=7s`
	withOpts := func(raw string) string {
		return raw + "&options=" + strings.ReplaceAll(url.QueryEscape(opts), "+", "%20")
	}
	const ins = "INSERT INTO rs VALUES (1)"
	const check = "SELECT current_setting('search_path'), current_setting('temp_tablespaces'), current_setting('statement_timeout')"
	for _, tc := range []struct {
		name  string
		alone bool     // BEGIN READ ONLY first, sent alone until it reaches the standby
		steps []string // simple Queries, or with "x:" one extended-protocol request
	}{
		{"RESET search_path", true, []string{"RESET search_path", "SET TRANSACTION READ WRITE", ins, check, "COMMIT", check}},
		{"RESET temp_tablespaces", true, []string{"RESET temp_tablespaces", "SET TRANSACTION READ WRITE", ins, "COMMIT", check}},
		{"RESET ALL", true, []string{"RESET ALL", "SET TRANSACTION READ WRITE", ins, check, "COMMIT", check}},
		{"RESET ALL, serializable", true, []string{"RESET ALL", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
			"SHOW transaction_isolation", check, "COMMIT"}},
		{"search_path TO DEFAULT", true, []string{"SET search_path TO DEFAULT; SHOW search_path", "SET transaction_read_only = off",
			ins, "COMMIT", check}},
		{"extended RESET search_path", true, []string{"x:RESET search_path", "SET TRANSACTION READ WRITE", ins, "COMMIT", check}},
		{"extended RESET ALL", true, []string{"x:RESET ALL", "SET TRANSACTION READ WRITE", ins, check, "COMMIT", check}},
		{"primary: RESET search_path, serializable", false, []string{"BEGIN", "RESET search_path",
			"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", check, "COMMIT"}},
		{"primary: extended RESET, serializable", false, []string{"BEGIN", "x:RESET statement_timeout",
			"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", check, "COMMIT", check}},
		{"RESET ALL, then a read-only transaction", false, []string{"SET search_path = public", "RESET ALL", "BEGIN READ ONLY",
			check, "SELECT count(*) FROM rs", "COMMIT"}},
		{"RESET ALL in a read-only transaction", false, []string{"BEGIN READ ONLY", "SET LOCAL work_mem = '8MB'", "RESET ALL",
			check, "SELECT count(*) FROM rs", "COMMIT", check}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := pgx.QueryExecModeSimpleProtocol
			direct := muxtest.Connect(t, withOpts(p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app")), mode, opTimeout)
			viaMux := muxtest.Connect(t, withOpts(p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app")), mode, opTimeout)
			for _, c := range []*pgx.Conn{direct, viaMux} {
				_, err := c.Exec(ctx, "SET search_path = pg_catalog; SET temp_tablespaces = ''; SET statement_timeout = '1min'")
				require.NoError(t, err)
			}
			if tc.alone {
				_, err := direct.Exec(ctx, "BEGIN READ ONLY")
				require.NoError(t, err)
				beginAloneOnStandby(t, p, viaMux)
			}
			for _, q := range tc.steps {
				run := func(c *pgx.Conn) []string {
					if x, ok := strings.CutPrefix(q, "x:"); ok {
						b := &pgconn.Batch{}
						b.ExecParams(x, nil, nil, nil, nil)
						return resultValues(c.PgConn().ExecBatch(ctx, b).ReadAll())
					}
					return resultValues(c.PgConn().Exec(ctx, q).ReadAll())
				}
				require.Equal(t, run(direct), run(viaMux), "%s: through pgmux as on the primary", q)
				require.Equal(t, direct.PgConn().TxStatus(), viaMux.PgConn().TxStatus(), "%s: transaction status", q)
			}
		})
	}
}
