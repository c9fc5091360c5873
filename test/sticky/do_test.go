package sticky

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// doBackends counts the backends of db whose last statement was a DO block: a DO that
// pgmux answered through the shared listener never reaches one.
func doBackends(t testing.TB, direct *pgx.Conn, db string) int {
	t.Helper()
	return backendsLast(t, direct, db, "DO%")
}

// deliverInOrder sends n notifications on channel from notifier and checks that client
// receives them in order, running a query after every every-th one.
func deliverInOrder(t testing.TB, client, notifier *pgx.Conn, channel string, n, every int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- receive(ctx, client, channel, n, every) }()
	go func() { errs <- notifyN(ctx, notifier, channel, n) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
}

// TestListenInDoMultiplexed: a LISTEN inside a DO block from an idle client, in each way
// of writing the block, goes to the shared listener like a plain LISTEN: the client
// gets PostgreSQL's answer (CommandComplete "DO"), stays unpinned, no server runs the
// block, and 100 notifications from another client arrive in order. A DO that only
// UNLISTENs stops the delivery the same way.
func TestListenInDoMultiplexed(t *testing.T) {
	const notifications = 100
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "dolisten")
	direct := m.direct(t, db)
	adm := m.admin(t)
	notifier := m.connect(t, db)

	forms := []struct{ name, channel, listen, unlisten string }{
		{"dollar quoted", "Dollar Ch", `DO $$BEGIN LISTEN "Dollar Ch"; END$$`, `DO $$BEGIN UNLISTEN "Dollar Ch"; END$$`},
		{"single quoted", "single", `DO 'BEGIN /* it''s quoted */ LISTEN single; END'`, `DO 'BEGIN UNLISTEN *; END'`},
		{"language first, tagged", "tagged", `DO LANGUAGE plpgsql $x$ BEGIN LISTEN tagged; END $x$`, `DO LANGUAGE plpgsql $x$ BEGIN UNLISTEN tagged; END $x$`},
		{"language last", "last", `DO $body$BEGIN BEGIN LISTEN last; END; END$body$ LANGUAGE plpgsql`, `UNLISTEN last`},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			ctx := ctxT(t)
			client := m.connect(t, db)
			tag, err := client.Exec(ctx, f.listen)
			require.NoError(t, err)
			require.Equal(t, "DO", tag.String())
			require.Empty(t, pinReasonOf(t, adm, db, client), "the DO block pinned its client")
			require.Equal(t, 0, doBackends(t, direct, db), "a server ran the DO block")
			require.Equal(t, 1, listenBackends(t, direct, db), "server connections that ran LISTEN")

			deliverInOrder(t, client, notifier, f.channel, notifications, 25)
			require.Empty(t, pinReasonOf(t, adm, db, client))

			tag, err = client.Exec(ctx, f.unlisten)
			require.NoError(t, err)
			_, err = notifier.Exec(ctx, "SELECT pg_notify($1, 'after')", f.channel)
			require.NoError(t, err)
			_, err = client.Exec(ctx, "SELECT 1") // a round trip: a notification would be here by now
			require.NoError(t, err)
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			nt, err := client.WaitForNotification(short)
			require.True(t, errors.Is(err, context.DeadlineExceeded), "notification after %s: %+v (%v)", tag, nt, err)
			require.Equal(t, 0, doBackends(t, direct, db), "a server ran the DO block")
		})
	}
}

// TestListenInDoThatPins: a DO block that LISTENs and does anything else runs on the
// client's server and pins it, so its notifications still arrive; when the block leaves
// no channel behind (its condition was false, or it failed with PostgreSQL's own error,
// as a reserved word for a channel does), the state check after it unpins the client at
// once.
func TestListenInDoThatPins(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "dopin")
	adm := m.admin(t)
	ctx := ctxT(t)
	notifier := m.connect(t, db)

	conditional := m.connect(t, db)
	tag, err := conditional.Exec(ctx, `DO $$BEGIN IF true THEN LISTEN cond; END IF; END$$`)
	require.NoError(t, err)
	require.Equal(t, "DO", tag.String())
	require.Equal(t, "listen", pinReasonOf(t, adm, db, conditional))

	skipped := m.connect(t, db)
	_, err = skipped.Exec(ctx, `DO $$BEGIN IF false THEN LISTEN cond; END IF; END$$`)
	require.NoError(t, err)
	waitPinReason(t, adm, db, skipped, "")

	failed := m.connect(t, db)
	_, err = failed.Exec(ctx, `DO $$BEGIN LISTEN cond; PERFORM 1/0; END$$`)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "22012", pe.Code)
	waitPinReason(t, adm, db, failed, "")

	// Listen-only in shape, but PostgreSQL rejects the channel name: the server says so.
	reserved := m.connect(t, db)
	_, err = reserved.Exec(ctx, `DO $$BEGIN LISTEN select; END$$`)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42601", pe.Code)
	waitPinReason(t, adm, db, reserved, "")

	deliverInOrder(t, conditional, notifier, "cond", 50, 10)
	for name, c := range map[string]*pgx.Conn{"skipped": skipped, "failed": failed} {
		_, err = c.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		nt, err := c.WaitForNotification(short)
		cancel()
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%s received %+v (%v)", name, nt, err)
	}
}

// TestAdvisoryLockInDo: a session advisory lock taken inside a DO block, however the
// block calls it (PERFORM, an EXECUTE literal, an IF condition), pins the client. Another
// client's pg_try_advisory_lock sees it held across the holder's later transactions, and
// the holder's pg_advisory_unlock finds it on the same server (PostgreSQL returns false
// and a WARNING from any other session).
func TestAdvisoryLockInDo(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "dolock")
	adm := m.admin(t)
	ctx := ctxT(t)
	other := m.connect(t, db)
	for i, block := range []string{
		`DO $$BEGIN PERFORM pg_advisory_lock(%d); END$$`,
		`DO $$BEGIN EXECUTE 'SELECT pg_advisory_lock(%d)'; END$$`,
		`DO 'DECLARE got bool; BEGIN IF pg_try_advisory_lock(%d) THEN got := true; END IF; END'`,
	} {
		key := 4200 + i
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			holder := m.connect(t, db)
			_, err := holder.Exec(ctx, fmt.Sprintf(block, key))
			require.NoError(t, err)
			require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, holder))
			for range 3 {
				tx, err := holder.Begin(ctx)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, "SELECT 1")
				require.NoError(t, err)
				require.NoError(t, tx.Commit(ctx))
				var got bool
				require.NoError(t, other.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got))
				require.False(t, got, "lock %d free while the DO block's session holds it", key)
			}
			var unlocked bool
			require.NoError(t, holder.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&unlocked))
			require.True(t, unlocked, "the unlock ran on another server than the lock")
			waitPinReason(t, adm, db, holder, "")
			var got bool
			require.NoError(t, other.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got))
			require.True(t, got)
			require.NoError(t, other.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&got))
			require.True(t, got)
		})
	}
}

// TestTempTableInDo: a temporary table created inside a DO block pins its client, so the
// table is there in its later transactions while other clients keep the pool's servers
// busy; dropping it ends the pin.
func TestTempTableInDo(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "dotemp")
	adm := m.admin(t)
	ctx := ctxT(t)
	client := m.connect(t, db)
	_, err := client.Exec(ctx, `DO $$BEGIN CREATE TEMP TABLE do_scratch (a int); INSERT INTO do_scratch VALUES (1); END$$`)
	require.NoError(t, err)
	require.Equal(t, "temp_object", pinReasonOf(t, adm, db, client))

	busy := []*pgx.Conn{m.connect(t, db), m.connect(t, db)}
	for i := range 5 {
		for _, b := range busy {
			_, err := b.Exec(ctx, "SELECT pg_sleep(0.01)")
			require.NoError(t, err)
		}
		_, err := client.Exec(ctx, "INSERT INTO do_scratch VALUES ($1)", i+2)
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, client.QueryRow(ctx, "SELECT count(*) FROM do_scratch").Scan(&n))
	require.Equal(t, 6, n)
	_, err = client.Exec(ctx, "DROP TABLE do_scratch")
	require.NoError(t, err)
	waitPinReason(t, adm, db, client, "")
}

// TestMultiStatementListen: LISTEN among other statements of one simple Query runs on the
// client's server, which it pins (as LISTEN mixed with other statements always has), and
// every statement's result comes back; LISTEN statements and listen-only DO blocks
// together are served by the shared listener, each with its own command tag.
func TestMultiStatementListen(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "multilisten")
	adm := m.admin(t)
	ctx := ctxT(t)
	notifier := m.connect(t, db)

	mixed := m.connect(t, db)
	results, err := mixed.PgConn().Exec(ctx, "SELECT 1; LISTEN mixed; SELECT 2").ReadAll()
	require.NoError(t, err)
	require.Len(t, results, 3)
	require.Equal(t, "1", string(results[0].Rows[0][0]))
	require.Equal(t, "LISTEN", results[1].CommandTag.String())
	require.Equal(t, "2", string(results[2].Rows[0][0]))
	require.Equal(t, "listen", pinReasonOf(t, adm, db, mixed))

	shared := m.connect(t, db)
	results, err = shared.PgConn().Exec(ctx, `LISTEN a; DO $$BEGIN LISTEN "B"; UNLISTEN a; END$$; LISTEN mixed`).ReadAll()
	require.NoError(t, err)
	var tags []string
	for _, r := range results {
		tags = append(tags, r.CommandTag.String())
	}
	require.Equal(t, []string{"LISTEN", "DO", "LISTEN"}, tags)
	require.Empty(t, pinReasonOf(t, adm, db, shared))

	_, err = notifier.Exec(ctx, "SELECT pg_notify('a', 'no'), pg_notify('B', 'b'), pg_notify('mixed', 'm')")
	require.NoError(t, err)
	nt, err := mixed.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "m", nt.Payload)
	got := map[string]string{}
	for range 2 {
		nt, err := shared.WaitForNotification(ctx)
		require.NoError(t, err)
		got[nt.Channel] = nt.Payload
	}
	require.Equal(t, map[string]string{"B": "b", "mixed": "m"}, got, "UNLISTEN a inside the DO block")
}

// TestDropAfterAnotherStatementUnpins: a DROP of the temporary table that pinned a client,
// sent after another statement in the same simple Query, ends the pin like a DROP on its
// own (pgmux's fast path, which skips the full scan of texts with nothing it tracks,
// looked at the text's first statement only).
func TestDropAfterAnotherStatementUnpins(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "dropafter")
	adm := m.admin(t)
	ctx := ctxT(t)
	client := m.connect(t, db)
	_, err := client.Exec(ctx, "CREATE TEMP TABLE scratch (a int)")
	require.NoError(t, err)
	require.Equal(t, "temp_object", pinReasonOf(t, adm, db, client))
	res, err := client.PgConn().Exec(ctx, "SELECT 1; DROP TABLE scratch").ReadAll()
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, "DROP TABLE", res[1].CommandTag.String())
	waitPinReason(t, adm, db, client, "")
}
