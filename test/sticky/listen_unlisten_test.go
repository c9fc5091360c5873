package sticky

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// execExtended runs sql as one Parse/Bind/Describe/Execute/Sync (pgx's ExecParams), as
// JDBC and psycopg send every statement.
func execExtended(ctx context.Context, conn *pgx.Conn, sql string) error {
	_, err := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Close()
	return err
}

// noNotification checks that conn has no notification, after a round trip through a
// server (which a notification committed before it would precede).
func noNotification(t *testing.T, ctx context.Context, conn *pgx.Conn, what string) {
	t.Helper()
	_, err := conn.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	nt, err := conn.WaitForNotification(short)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%s: received %+v (%v)", what, nt, err)
}

// TestUnlistenEndsSharedSubscription: a client subscribed on the shared listener (a
// plain LISTEN) whose UNLISTEN or DISCARD ALL goes to a server stops receiving as it
// would on PostgreSQL: when the statement's transaction commits — inside a transaction
// block, at its COMMIT; sent with the extended protocol, at the Execute's completion
// and Sync — and keeps receiving when it rolls back (LISTEN and UNLISTEN are
// transactional). A control client proves each notification went out.
func TestUnlistenEndsSharedSubscription(t *testing.T) {
	m := startMux(t, setup{poolSize: 3})
	db := m.pg.NewDatabase(t, "unlistenshared")
	ctx := ctxT(t)
	simple := func(sqls ...string) unlistenRun { return simpleRun(ctx, sqls...) }
	extended := func(sql string) func(*pgx.Conn, string) error {
		return func(c *pgx.Conn, ch string) error { return execExtended(ctx, c, strings.ReplaceAll(sql, "CH", ch)) }
	}
	cases := []struct {
		name    string
		run     unlistenRun
		stopped bool // PostgreSQL no longer delivers
	}{
		{"tx UNLISTEN commit", simple("BEGIN", "UNLISTEN CH", "COMMIT"), true},
		{"tx UNLISTEN * commit", simple("BEGIN", "UNLISTEN *", "COMMIT"), true},
		{"tx UNLISTEN one query", simple("BEGIN; UNLISTEN CH; COMMIT"), true},
		{"tx UNLISTEN rollback", simple("BEGIN", "UNLISTEN CH", "ROLLBACK"), false},
		{"tx UNLISTEN failed commit", simple("BEGIN", "UNLISTEN CH", "SELECT 1/0", "COMMIT"), false},
		{"implicit tx fails", simple("UNLISTEN CH; SELECT 1/0"), false},
		{"extended UNLISTEN", extended("UNLISTEN CH"), true},
		{"extended UNLISTEN *", extended("UNLISTEN *"), true},
		{"DISCARD ALL", simple("DISCARD ALL"), true},
		{"extended DISCARD ALL", extended("DISCARD ALL"), true},
		{"extended UNLISTEN in tx rollback", func(c *pgx.Conn, ch string) error {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			if err := execExtended(ctx, c, "UNLISTEN "+ch); err != nil {
				return err
			}
			_, err := c.Exec(ctx, "ROLLBACK")
			return err
		}, false},
	}
	notifier, control := m.connect(t, db), m.connect(t, db)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkUnlisten(t, ctx, m.connect(t, db), control, notifier, fmt.Sprintf("u%d", i), tc.run, tc.stopped)
		})
	}
}

// unlistenRun is what a listening client runs on channel ch (named CH in its SQL).
type unlistenRun func(c *pgx.Conn, ch string) error

// simpleRun runs sqls as simple Queries, CH replaced by the channel; a statement with
// "1/0" may fail.
func simpleRun(ctx context.Context, sqls ...string) unlistenRun {
	return func(c *pgx.Conn, ch string) error {
		for _, s := range sqls {
			if _, err := c.Exec(ctx, strings.ReplaceAll(s, "CH", ch)); err != nil && !strings.Contains(s, "1/0") {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
}

// checkUnlisten LISTENs client and control on ch, has client run run, NOTIFYs ch through
// notifier and checks that client gets the notification once or, stopped, not at all;
// control's copy proves it went out.
func checkUnlisten(t *testing.T, ctx context.Context, client, control, notifier *pgx.Conn, ch string, run unlistenRun, stopped bool) {
	t.Helper()
	for _, c := range []*pgx.Conn{client, control} {
		_, err := c.Exec(ctx, "LISTEN "+ch)
		require.NoError(t, err)
	}
	require.NoError(t, run(client, ch))
	_, err := notifier.Exec(ctx, "NOTIFY "+ch+", 'after'")
	require.NoError(t, err)
	nt, err := control.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, ch, nt.Channel)
	if stopped {
		noNotification(t, ctx, client, "after the run")
		return
	}
	nt, err = client.WaitForNotification(ctx)
	require.NoError(t, err, "the client stopped receiving")
	require.Equal(t, "after", nt.Payload)
	noNotification(t, ctx, client, "a second copy")
}

// TestListenTwiceDeliversOnce: a client subscribed on the shared listener that LISTENs
// on the same channel again where it goes to its server — in a transaction block, or
// while pinned — gets each notification once, as from PostgreSQL (a second LISTEN of a
// channel is a no-op), not once from its server and once from the shared listener. After
// UNLISTEN it gets none.
func TestListenTwiceDeliversOnce(t *testing.T) {
	m := startMux(t, setup{poolSize: 3})
	db := m.pg.NewDatabase(t, "listentwice")
	adm := m.admin(t)
	ctx := ctxT(t)
	notifier := m.connect(t, db)
	cases := map[string][]string{
		"tx LISTEN":           {"BEGIN", "LISTEN CH", "COMMIT"},
		"LISTEN while pinned": {"SELECT pg_advisory_lock(7)", "LISTEN CH"},
	}
	i := 0
	for name, sqls := range cases {
		i++
		ch := fmt.Sprintf("t%d", i)
		t.Run(name, func(t *testing.T) {
			client := m.connect(t, db)
			_, err := client.Exec(ctx, "LISTEN "+ch)
			require.NoError(t, err)
			for _, s := range sqls {
				_, err := client.Exec(ctx, strings.ReplaceAll(s, "CH", ch))
				require.NoError(t, err, s)
			}
			require.NotEmpty(t, pinReasonOf(t, adm, db, client), "the second LISTEN is on the client's server")
			_, err = notifier.Exec(ctx, "NOTIFY "+ch+", 'once'")
			require.NoError(t, err)
			nt, err := client.WaitForNotification(ctx)
			require.NoError(t, err)
			require.Equal(t, "once", nt.Payload)
			noNotification(t, ctx, client, "a second copy")

			_, err = client.Exec(ctx, "UNLISTEN "+ch)
			require.NoError(t, err)
			_, err = notifier.Exec(ctx, "NOTIFY "+ch+", 'none'")
			require.NoError(t, err)
			noNotification(t, ctx, client, "after UNLISTEN")
		})
	}
}
