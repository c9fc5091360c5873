package multihost

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestReadOnlySessionSwitchesToReadWrite: a request of a read-only session (SET
// default_transaction_read_only = on), or one beginning a read-only transaction, that
// switches to read-write and then writes is answered as a direct connection to the
// primary answers it. Every such request went to the standby, which refused the switch
// (0A000) or the write (25006) where the primary ran them: `SET
// default_transaction_read_only = off; COMMIT; INSERT ...`, `SET transaction_read_only
// = off; INSERT ...`, `BEGIN; SET TRANSACTION READ WRITE; ...`, `SHOW ...; BEGIN READ
// WRITE; ...`, set_config, and the same as pgx batches (one Sync), DISCARD ALL among
// them. So did a read-only transaction asking for serializable isolation, which a
// standby refuses (0A000): `BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY`, `SET
// TRANSACTION ISOLATION LEVEL SERIALIZABLE`. Requests PostgreSQL itself refuses (the switch comes too late for the
// transaction already running) get the same errors. Read-only requests of the session
// still reach the standby.
func TestReadOnlySessionSwitchesToReadWrite(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE rw (x int); GRANT ALL ON rw TO app")
	ctx, cancel := context.WithTimeout(context.Background(), 4*opTimeout)
	defer cancel()
	const ins, roSession = "INSERT INTO rw VALUES (1)", "SET default_transaction_read_only = on"
	for _, tc := range []struct {
		name    string
		session string   // run first on the connection: "" or roSession
		query   string   // one simple Query, or
		batch   []string // a pgx batch: each statement parsed, bound and executed, one Sync
	}{
		{name: "SET off, COMMIT, write", session: roSession, query: "SET default_transaction_read_only = off; COMMIT; " + ins},
		{name: "set_config off, COMMIT, write", session: roSession,
			query: "SELECT set_config('default_transaction_read_only', 'off', false); COMMIT; " + ins},
		{name: "SET transaction_read_only off, write", session: roSession, query: "SET transaction_read_only = off; " + ins},
		{name: "SET TRANSACTION READ WRITE, write", session: roSession, query: "SET TRANSACTION READ WRITE; " + ins},
		{name: "BEGIN, SET TRANSACTION READ WRITE", session: roSession, query: "BEGIN; SET TRANSACTION READ WRITE; " + ins + "; COMMIT"},
		{name: "SHOW, BEGIN READ WRITE", session: roSession, query: "SHOW transaction_read_only; BEGIN READ WRITE; " + ins + "; COMMIT"},
		{name: "SELECT, COMMIT, BEGIN READ WRITE", session: roSession, query: "SELECT 1; COMMIT; BEGIN READ WRITE; " + ins + "; COMMIT"},
		{name: "BEGIN READ ONLY, SET TRANSACTION READ WRITE", query: "BEGIN READ ONLY; SET TRANSACTION READ WRITE; " + ins + "; COMMIT"},
		// Refused by PostgreSQL too: the transaction running is read-only.
		{name: "SELECT, BEGIN READ WRITE", session: roSession, query: "SELECT 1; BEGIN READ WRITE; " + ins + "; COMMIT"},
		{name: "SET off, write", session: roSession, query: "SET default_transaction_read_only = off; " + ins},
		{name: "SET SESSION CHARACTERISTICS, write", session: roSession,
			query: "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; " + ins},
		{name: "RESET, write", session: roSession, query: "RESET default_transaction_read_only; " + ins},
		{name: "RESET ALL, write", session: roSession, query: "RESET ALL; " + ins},
		{name: "DISCARD ALL, write", session: roSession, query: "DISCARD ALL; " + ins},
		{name: "START TRANSACTION SERIALIZABLE, READ WRITE", session: roSession,
			query: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE; " + ins + "; COMMIT"},
		// A standby refuses serializable isolation (0A000); the primary takes it.
		{name: "BEGIN SERIALIZABLE READ ONLY", query: "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT count(*) FROM rw; COMMIT"},
		{name: "BEGIN, SET TRANSACTION SERIALIZABLE", session: roSession,
			query: "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, DEFERRABLE; SHOW transaction_isolation; COMMIT"},
		{name: "SET TRANSACTION SERIALIZABLE outside a transaction", session: roSession,
			query: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1"},

		{name: "batch: DISCARD ALL, write", session: roSession, batch: []string{"DISCARD ALL", ins}},
		{name: "batch: SET transaction_read_only off, write", session: roSession,
			batch: []string{"SET transaction_read_only = off", ins}},
		{name: "batch: SHOW, BEGIN READ WRITE", session: roSession,
			batch: []string{"SHOW transaction_read_only", "BEGIN READ WRITE", ins, "COMMIT"}},
		{name: "batch: SELECT, COMMIT, BEGIN READ WRITE", session: roSession,
			batch: []string{"SELECT 1", "COMMIT", "BEGIN READ WRITE", ins, "COMMIT"}},
		{name: "batch: SET off, COMMIT, write", session: roSession,
			batch: []string{"SET default_transaction_read_only = off", "COMMIT", ins}},
		{name: "batch: BEGIN READ ONLY, SET TRANSACTION READ WRITE",
			batch: []string{"BEGIN READ ONLY", "SET TRANSACTION READ WRITE", ins, "COMMIT"}},
		{name: "batch: SELECT, BEGIN READ WRITE", session: roSession, batch: []string{"SELECT 1", "BEGIN READ WRITE", ins, "COMMIT"}},
		{name: "batch: START TRANSACTION SERIALIZABLE, READ WRITE", session: roSession,
			batch: []string{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", ins, "COMMIT"}},
		{name: "batch: BEGIN SERIALIZABLE READ ONLY DEFERRABLE",
			batch: []string{"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", "SHOW transaction_isolation", "COMMIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := pgx.QueryExecModeSimpleProtocol
			if tc.batch != nil {
				mode = pgx.QueryExecModeExec
			}
			run := func(c *pgx.Conn) []string {
				if tc.batch != nil {
					return batchOutcome(ctx, c, tc.batch)
				}
				return queryOutcome(ctx, c, tc.query)
			}
			direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			if tc.session != "" {
				for _, c := range []*pgx.Conn{direct, viaMux} {
					_, err := c.Exec(ctx, tc.session)
					require.NoError(t, err)
				}
				untilStandby(t, p, viaMux) // the session's requests are routed to the standby
			}
			want := run(direct)
			require.Equal(t, want, run(viaMux), "through pgmux as on the primary")
		})
	}

	// The session's read-only requests still run on the standby, in both protocols.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run("read-only requests "+mode.String(), func(t *testing.T) {
			c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			_, err := c.Exec(ctx, roSession)
			require.NoError(t, err)
			untilStandby(t, p, c)
			var rec bool
			require.NoError(t, c.QueryRow(ctx, "SELECT pg_is_in_recovery() FROM rw LIMIT 1 /* SET default_transaction_read_only = off */").Scan(&rec))
			require.True(t, rec, "a read of the read-only session")
			b := &pgx.Batch{}
			b.Queue("SET default_transaction_read_only = on")
			b.Queue("SELECT pg_is_in_recovery()")
			br := c.SendBatch(ctx, b)
			_, err = br.Exec()
			require.NoError(t, err)
			require.NoError(t, br.QueryRow().Scan(&rec))
			require.NoError(t, br.Close())
			require.True(t, rec, "a batch that keeps the session read-only")
		})
	}
}

// untilStandby waits until a read of c reaches the standby: c's requests are routed there
// from then on.
func untilStandby(t *testing.T, p *replicaPair, c *pgx.Conn) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, standby := server(t, c)
		return standby
	}, 10*time.Second, 20*time.Millisecond, "a read reaches the standby; %s", primaryReasons(t, p.reg))
}

// queryOutcome runs sql as one simple Query and returns each statement's tag, up to the
// SQLSTATE of the error that ended it.
func queryOutcome(ctx context.Context, c *pgx.Conn, sql string) []string {
	res, err := c.PgConn().Exec(ctx, sql).ReadAll()
	var out []string
	for _, r := range res {
		out = append(out, outcome(r.CommandTag, r.Err))
	}
	if err != nil && (len(res) == 0 || res[len(res)-1].Err == nil) {
		out = append(out, outcome(pgconn.CommandTag{}, err))
	}
	return out
}

// batchOutcome runs stmts as one pgx batch and returns each one's tag or SQLSTATE.
func batchOutcome(ctx context.Context, c *pgx.Conn, stmts []string) []string {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s)
	}
	br := c.SendBatch(ctx, b)
	var out []string
	for range stmts {
		tag, err := br.Exec()
		out = append(out, outcome(tag, err))
	}
	if err := br.Close(); err != nil {
		out = append(out, "close: "+outcome(pgconn.CommandTag{}, err))
	}
	return out
}

// outcome is a statement's tag, or its error's SQLSTATE.
func outcome(tag pgconn.CommandTag, err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case err != nil:
		return strings.TrimSpace(err.Error())
	}
	return tag.String()
}
