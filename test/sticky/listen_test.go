package sticky

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// listenBackends counts the backends of db whose last statement was a LISTEN: the
// server connections used for listening.
func listenBackends(t testing.TB, direct *pgx.Conn, db string) int {
	t.Helper()
	return backendsLast(t, direct, db, "LISTEN%")
}

// backendsLast counts the client backends of db whose last statement is ILIKE pattern.
func backendsLast(t testing.TB, direct *pgx.Conn, db, pattern string) int {
	t.Helper()
	var n int
	require.NoError(t, direct.QueryRow(ctxT(t), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend' AND query ILIKE $2`, db, pattern).Scan(&n))
	return n
}

// receive reads n notifications from conn and checks their channel and that payloads
// are "0", "1", ... in order. Between notifications, every query-th one, it runs a
// query: notifications must also arrive around ordinary traffic.
func receive(ctx context.Context, conn *pgx.Conn, channel string, n, query int) error {
	for i := 0; i < n; i++ {
		nt, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("notification %d: %w", i, err)
		}
		if nt.Channel != channel || nt.Payload != strconv.Itoa(i) {
			return fmt.Errorf("notification %d: got %q on %q, want %q on %q", i, nt.Payload, nt.Channel, strconv.Itoa(i), channel)
		}
		if query > 0 && i%query == 0 {
			var v int
			if err := conn.QueryRow(ctx, "SELECT $1::int", i).Scan(&v); err != nil || v != i {
				return fmt.Errorf("query after notification %d: %v (%d)", i, err, v)
			}
		}
	}
	return nil
}

// notifyN sends n notifications on channel with payloads "0".."n-1", one transaction each.
func notifyN(ctx context.Context, conn *pgx.Conn, channel string, n int) error {
	for i := 0; i < n; i++ {
		if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", channel, strconv.Itoa(i)); err != nil {
			return fmt.Errorf("notify %d: %w", i, err)
		}
	}
	return nil
}

// TestListenMultiplexed: 200 pgx clients LISTEN on one channel through the
// transaction-mode URL and each receives all 1000 notifications another client sends, in
// order, while PostgreSQL sees one listening backend. pgx's Exec of a statement without
// arguments always uses the simple protocol (pgx v5 conn.go: "Always use simple protocol
// when there are no arguments"), so Exec("LISTEN ch") is multiplexed with pgx's defaults.
func TestListenMultiplexed(t *testing.T) {
	const listeners, notifications = 200, 1000
	m := startMux(t, setup{poolSize: 5})
	db := m.pg.NewDatabase(t, "listen")
	direct := m.direct(t, db)
	adm := m.admin(t)

	conns := make([]*pgx.Conn, listeners)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	var mu sync.Mutex
	var connErrs []error
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			c, err := pgx.Connect(ctx, m.url(db))
			if err == nil {
				_, err = c.Exec(ctx, "LISTEN events")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				connErrs = append(connErrs, err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.Background())
			}
		}
	})
	require.Empty(t, connErrs)

	// Nobody is pinned: LISTEN went to the database's listener connection.
	for port, reason := range pinReasons(t, adm, db) {
		require.Empty(t, reason, "client at port %d pinned", port)
	}
	require.Equal(t, 1, listenBackends(t, direct, db), "server connections that ran LISTEN")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	errs := make(chan error, listeners+1)
	for i, c := range conns {
		query := 0
		if i%20 == 0 {
			query = 100 // a few listeners also run queries between notifications
		}
		go func() { errs <- receive(ctx, c, "events", notifications, query) }()
	}
	notifier := m.connect(t, db)
	go func() { errs <- notifyN(ctx, notifier, "events", notifications) }()
	var failures []error
	for range listeners + 1 {
		if err := <-errs; err != nil {
			failures = append(failures, err)
			cancel()
		}
	}
	require.Empty(t, failures)
	require.Equal(t, 1, listenBackends(t, direct, db), "server connections that ran LISTEN")
	// The clients' backends: the pool's, plus the listener; nowhere near one per client.
	require.LessOrEqual(t, backends(t, direct, db), 5+1)
}

// TestListenPinMode: with listen_mode = pin, each LISTENing client keeps its own server
// (reason "listen") and still receives every notification in order.
func TestListenPinMode(t *testing.T) {
	const listeners, notifications = 3, 200
	m := startMux(t, setup{poolSize: 2, directSize: 5, listenMode: "pin"})
	db := m.pg.NewDatabase(t, "listenpin")
	direct := m.direct(t, db)
	adm := m.admin(t)
	conns := make([]*pgx.Conn, listeners)
	for i := range conns {
		conns[i] = m.connect(t, db)
		_, err := conns[i].Exec(ctxT(t), "LISTEN events")
		require.NoError(t, err)
		require.Equal(t, "listen", pinReasonOf(t, adm, db, conns[i]))
	}
	require.Equal(t, listeners, listenBackends(t, direct, db))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, listeners+1)
	for _, c := range conns {
		go func() { errs <- receive(ctx, c, "events", notifications, 50) }()
	}
	notifier := m.connect(t, db)
	go func() { errs <- notifyN(ctx, notifier, "events", notifications) }()
	for range listeners + 1 {
		require.NoError(t, <-errs)
	}
	// UNLISTEN * ends the pin.
	for _, c := range conns {
		_, err := c.Exec(ctxT(t), "UNLISTEN *")
		require.NoError(t, err)
		waitPinReason(t, adm, db, c, "")
	}
}

// TestListenInTransaction: LISTEN inside a transaction takes effect only when it commits
// (the client pins, so the LISTEN lives on its server); one in a transaction that rolls
// back subscribes to nothing and leaves the client unpinned. A LISTEN sent in the
// extended protocol (as JDBC sends every statement) is not multiplexed: it pins, and works.
func TestListenInTransaction(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "listentx")
	adm := m.admin(t)
	ctx := ctxT(t)

	control := m.connect(t, db) // multiplexed LISTEN: proves the notification went out
	_, err := control.Exec(ctx, "LISTEN ch")
	require.NoError(t, err)

	rolledBack := m.connect(t, db)
	tx, err := rolledBack.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LISTEN ch")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	waitPinReason(t, adm, db, rolledBack, "") // a rolled-back LISTEN leaves no session state

	committed := m.connect(t, db)
	tx, err = committed.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LISTEN ch")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "listen", pinReasonOf(t, adm, db, committed))

	extended := m.connect(t, db)
	rr := extended.PgConn().ExecParams(ctx, "LISTEN ch", nil, nil, nil, nil)
	_, err = rr.Close()
	require.NoError(t, err)
	require.Equal(t, "listen", pinReasonOf(t, adm, db, extended))

	notifier := m.connect(t, db)
	_, err = notifier.Exec(ctx, "NOTIFY ch, 'hello'")
	require.NoError(t, err)
	for name, c := range map[string]*pgx.Conn{"control": control, "committed": committed, "extended": extended} {
		nt, err := c.WaitForNotification(ctx)
		require.NoError(t, err, name)
		require.Equal(t, "hello", nt.Payload, name)
	}
	// The control client has its notification; the rolled-back one gets none, even
	// after a round trip through a server.
	_, err = rolledBack.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	nt, err := rolledBack.WaitForNotification(short)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "rolled-back LISTEN received %+v (%v)", nt, err)
}

// TestUnlistenWhilePinned: a client that LISTENed through the shared listener and then
// pinned its server (an advisory lock) still stops receiving after UNLISTEN, which now
// travels to its pinned server.
func TestUnlistenWhilePinned(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "unlistenpin")
	adm := m.admin(t)
	ctx := ctxT(t)
	for _, unlisten := range []string{"UNLISTEN ch", "UNLISTEN *"} {
		t.Run(unlisten, func(t *testing.T) {
			client, control := m.connect(t, db), m.connect(t, db)
			for _, c := range []*pgx.Conn{client, control} {
				_, err := c.Exec(ctx, "LISTEN ch")
				require.NoError(t, err)
			}
			_, err := client.Exec(ctx, "SELECT pg_advisory_lock(21)")
			require.NoError(t, err)
			require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, client))
			_, err = client.Exec(ctx, unlisten)
			require.NoError(t, err)

			notifier := m.connect(t, db)
			_, err = notifier.Exec(ctx, "NOTIFY ch, 'after'")
			require.NoError(t, err)
			nt, err := control.WaitForNotification(ctx)
			require.NoError(t, err)
			require.Equal(t, "after", nt.Payload)
			_, err = client.Exec(ctx, "SELECT pg_advisory_unlock_all()")
			require.NoError(t, err)
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			nt, err = client.WaitForNotification(short)
			require.True(t, errors.Is(err, context.DeadlineExceeded), "notification after %s: %+v (%v)", unlisten, nt, err)
		})
	}
}
