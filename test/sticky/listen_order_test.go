package sticky

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// notifiedBy runs one round of pgx's TestListenNotify: notifier commits NOTIFY channel
// with payload, then listener runs a query, and the notification must already be there
// when the query's answer is (WaitForNotification with a cancelled context returns only
// what was received), as on a direct connection, where the listening backend sends it
// before it reads the query.
func notifiedBy(ctx context.Context, listener, notifier *pgx.Conn, channel, payload, query string) error {
	if _, err := notifier.Exec(ctx, "NOTIFY "+channel+", '"+payload+"'"); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if strings.HasPrefix(query, "select") {
		rows, _ := listener.Query(ctx, query) // extended protocol, pgx's statement cache
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
	} else if _, err := listener.Exec(ctx, query); err != nil { // no arguments: simple protocol
		return fmt.Errorf("%s: %w", query, err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	nt, err := listener.WaitForNotification(done)
	if err != nil {
		return fmt.Errorf("notification %s not received by the end of %q: %w", payload, query, err)
	}
	if nt.Channel != channel || nt.Payload != payload {
		return fmt.Errorf("got %q on %q, want %q on %q", nt.Payload, nt.Channel, payload, channel)
	}
	return nil
}

// TestListenNotifyBeforeAnswer: a notification committed before a multiplexed listening
// client's query reaches the client before that query's answer, whatever the query
// (extended protocol as pgx sends it, simple protocol, a transaction's statements) and
// however many listening clients ask at once: pgmux holds the answer's ReadyForQuery
// until a round trip on the shared listener connection has come back. 8 pairs of clients
// run 150 rounds each, in parallel, to make the race likely (without that round trip,
// some pair lost it within its first three rounds in each of 5 runs).
func TestListenNotifyBeforeAnswer(t *testing.T) {
	const pairs, rounds = 8, 150
	m := startMux(t, setup{poolSize: 4})
	db := m.pg.NewDatabase(t, "listenorder")
	direct := m.direct(t, db)
	adm := m.admin(t)
	queries := []string{"select 1", "SELECT 2", "BEGIN; SELECT 3; COMMIT"}

	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, pairs)
	for p := range pairs {
		listener, notifier := m.connect(t, db), m.connect(t, db)
		channel := "chat" + strconv.Itoa(p)
		_, err := listener.Exec(ctx, "LISTEN "+channel)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				q := queries[i%len(queries)]
				if err := notifiedBy(ctx, listener, notifier, channel, strconv.Itoa(i), q); err != nil {
					errs <- fmt.Errorf("pair %d round %d: %w", p, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Still multiplexed: nobody pinned, one listening backend.
	for port, reason := range pinReasons(t, adm, db) {
		require.Empty(t, reason, "client at port %d pinned", port)
	}
	require.Equal(t, 1, listenBackends(t, direct, db))
}

// TestListenListenerStuckOrGone: while the shared listener's backend does not answer
// (stopped with SIGSTOP: the test runs as root or as the server's own user), a listening
// client's queries are held at most once for the bound (500 ms) and then answered
// without waiting; once the backend runs again, the notifications come, and before the
// answers again. While the listener connection is gone (its backend terminated) and
// pgmux reconnects it, queries are answered without waiting; after, the order holds.
func TestListenListenerStuckOrGone(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "listenstuck")
	direct := m.direct(t, db)
	ctx := ctxT(t)
	listener, notifier := m.connect(t, db), m.connect(t, db)
	_, err := listener.Exec(ctx, "LISTEN stuck")
	require.NoError(t, err)
	require.NoError(t, notifiedBy(ctx, listener, notifier, "stuck", "before", "select 1"))

	var pid int
	require.NoError(t, direct.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend' AND query ILIKE 'LISTEN%'`, db).Scan(&pid))
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	const queries = 10
	start := time.Now()
	for i := range queries {
		var v int
		require.NoError(t, listener.QueryRow(ctx, "SELECT $1::int", i).Scan(&v))
		require.Equal(t, i, v)
	}
	// One wait for the bound, not one per query (that would be 5 s).
	require.Less(t, time.Since(start), 3*time.Second, "%d queries while the listener was stuck", queries)
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false

	_, err = notifier.Exec(ctx, "NOTIFY stuck, 'during'")
	require.NoError(t, err)
	nt, err := listener.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "during", nt.Payload)
	for i := range 20 {
		require.NoError(t, notifiedBy(ctx, listener, notifier, "stuck", "after"+strconv.Itoa(i), "select 1"))
	}

	var terminated bool
	require.NoError(t, direct.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&terminated))
	require.True(t, terminated)
	start = time.Now()
	for i := range queries {
		var v int
		require.NoError(t, listener.QueryRow(ctx, "SELECT $1::int", i).Scan(&v))
	}
	require.Less(t, time.Since(start), 3*time.Second, "%d queries while the listener reconnected", queries)
	// Reconnected and listening again (notifications sent before that are missed).
	for i := 0; ; i++ {
		_, err = notifier.Exec(ctx, "NOTIFY stuck, 'probe'")
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		nt, err = listener.WaitForNotification(short)
		cancel()
		if err == nil {
			require.Equal(t, "probe", nt.Payload)
			break
		}
		require.Less(t, i, 100, "the listener did not come back: %v", err)
	}
	// A probe that came late is here by the end of a query: drop it.
	_, err = listener.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	done, cancel := context.WithCancel(ctx)
	cancel()
	for {
		nt, err := listener.WaitForNotification(done)
		if err != nil {
			break
		}
		require.Equal(t, "probe", nt.Payload)
	}
	for i := range 20 {
		require.NoError(t, notifiedBy(ctx, listener, notifier, "stuck", "back"+strconv.Itoa(i), "select 1"))
	}
}

// TestListenSelfNotify: a multiplexed listening client's own NOTIFY reaches it before
// the ReadyForQuery of the request that committed it, as on PostgreSQL (CommandComplete,
// NotificationResponse, ReadyForQuery): when pgx's Exec returns, the notification is
// already received (WaitForNotification with a cancelled context returns only what was).
// Autocommit, a transaction block (delivered with the COMMIT), pg_notify in one Query,
// and pg_notify sent in the extended protocol with its Parse.
func TestListenSelfNotify(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "selfnotify")
	ctx := ctxT(t)
	client := m.connect(t, db)
	_, err := client.Exec(ctx, "LISTEN sn")
	require.NoError(t, err)
	cases := [][]string{
		{"NOTIFY sn, 'P'"},
		{"BEGIN", "NOTIFY sn, 'P'", "COMMIT"},
		{"SELECT pg_notify('sn', 'P')"},
		{"extended"},
	}
	for round := range 20 {
		for i, sqls := range cases {
			payload := fmt.Sprintf("%d-%d", round, i)
			for _, s := range sqls {
				if s == "extended" {
					_, err := client.PgConn().ExecParams(ctx, "SELECT pg_notify('sn', '"+payload+"')", nil, nil, nil, nil).Close()
					require.NoError(t, err)
					continue
				}
				_, err := client.Exec(ctx, strings.ReplaceAll(s, "'P'", "'"+payload+"'"))
				require.NoError(t, err, s)
			}
			done, cancel := context.WithCancel(ctx)
			cancel()
			nt, err := client.WaitForNotification(done)
			require.NoError(t, err, "round %d %v: own notification not there when the answer was", round, sqls)
			require.Equal(t, payload, nt.Payload)
		}
	}
}
