package sticky

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

func backendPID(t testing.TB, conn *pgx.Conn) uint32 {
	t.Helper()
	var pid uint32
	require.NoError(t, conn.QueryRow(ctxT(t), "SELECT pg_backend_pid()").Scan(&pid))
	return pid
}

// waitBackends waits until db has want client backends of the app user.
func waitBackends(t testing.TB, direct *pgx.Conn, db string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := backends(t, direct, db)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			require.Equal(t, want, got, "backends of %s", db)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnpinReturnsServer: with one pooled and one direct server, a client holding an
// advisory lock keeps the direct one; pg_advisory_unlock_all() puts it back in
// transaction pooling, which frees the direct slot for another sticky client and leaves
// the first one served by the pool's one server. The same for UNLISTEN * after a
// LISTEN that pinned.
func TestUnpinReturnsServer(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, directSize: 1, waitTimeout: 2})
	db := m.pg.NewDatabase(t, "unpin")
	direct := m.direct(t, db)
	adm := m.admin(t)
	ctx := ctxT(t)

	a, b, c := m.connect(t, db), m.connect(t, db), m.connect(t, db)
	_, err := a.Exec(ctx, "SELECT pg_advisory_lock(1)")
	require.NoError(t, err)
	require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, a))
	pinnedPID := backendPID(t, a)
	poolPID := backendPID(t, b) // the pool's one server: the pinned one left the pool's count
	require.NotEqual(t, pinnedPID, poolPID)
	// SHOW LISTS counts the pinned server as used (it left the pool's size, not the pool).
	require.Eventually(t, func() bool {
		return showList(t, adm, "used_servers") == 1 && showList(t, adm, "free_servers") == 1
	}, 5*time.Second, 10*time.Millisecond, "used_servers %d, free_servers %d",
		showList(t, adm, "used_servers"), showList(t, adm, "free_servers"))

	// The direct budget is used up: another sticky client is refused after the wait.
	_, err = c.Exec(ctx, "SELECT pg_advisory_lock(2)")
	pe := muxtest.PgError(t, err)
	require.Equal(t, "53300", pe.Code, pe.Message)
	require.Contains(t, pe.Message, "advisory_lock")
	require.Equal(t, poolPID, backendPID(t, c), "the refused client still runs through the pool")

	_, err = a.Exec(ctx, "SELECT pg_advisory_unlock_all()")
	require.NoError(t, err)
	waitPinReason(t, adm, db, a, "")
	require.Equal(t, poolPID, backendPID(t, a), "unpinned: served by the pool's server")
	// The pool already had its one server: the formerly pinned one was closed, not kept.
	waitBackends(t, direct, db, 1)

	// The direct slot is free again.
	_, err = c.Exec(ctx, "SELECT pg_advisory_lock(2)")
	require.NoError(t, err)
	require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, c))
	// c took the pool's server along: the pool opens another for a.
	require.NotEqual(t, backendPID(t, c), backendPID(t, a))
	waitBackends(t, direct, db, 2)
	_, err = c.Exec(ctx, "SELECT pg_advisory_unlock(2)")
	require.NoError(t, err)
	waitPinReason(t, adm, db, c, "")

	// LISTEN committed inside a transaction pins; UNLISTEN * unpins.
	require.NoError(t, pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "LISTEN jobs")
		return err
	}))
	require.Equal(t, "listen", pinReasonOf(t, adm, db, b))
	require.NotEqual(t, poolPID, backendPID(t, a), "b's server is pinned: a runs on another")
	_, err = b.Exec(ctx, "UNLISTEN *")
	require.NoError(t, err)
	waitPinReason(t, adm, db, b, "")
	waitBackends(t, direct, db, 1)
	require.Equal(t, backendPID(t, a), backendPID(t, b), "both on the pool's one server")
}

// TestDirectBudgetExhausted: sticky clients beyond direct_pool_size get SQLSTATE 53300
// naming the reason after query_wait_timeout — as a statement of their own, in the
// extended protocol, and inside a transaction already running on a pooled server —
// while non-sticky clients keep running with no error.
func TestDirectBudgetExhausted(t *testing.T) {
	const wait = 2 * time.Second
	m := startMux(t, setup{poolSize: 3, directSize: 2, waitTimeout: 2})
	db := m.pg.NewDatabase(t, "budget")
	adm := m.admin(t)
	ctx := ctxT(t)

	for i := 1; i <= 2; i++ {
		s := m.connect(t, db)
		_, err := s.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", i))
		require.NoError(t, err)
		require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, s))
	}

	// Non-sticky traffic throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	errs := make(chan error, 16)
	for i := 0; i < 10; i++ {
		conn := m.connect(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					var v int
					if err := tx.QueryRow(ctx, "SELECT $1::int", j).Scan(&v); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "SELECT pg_sleep(0.001)")
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				ok.Add(1)
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "non-sticky client")
		}
		require.Positive(t, ok.Load())
		t.Logf("non-sticky transactions meanwhile: %d", ok.Load())
	}()

	refused := func(t *testing.T, err error, reason string, started time.Time) {
		t.Helper()
		pe := muxtest.PgError(t, err)
		require.Equal(t, "53300", pe.Code, pe.Message)
		require.Contains(t, pe.Message, reason)
		require.Contains(t, pe.Message, "direct")
		require.GreaterOrEqual(t, time.Since(started), wait-100*time.Millisecond, "refused before query_wait_timeout")
	}
	usable := func(t *testing.T, conn *pgx.Conn) {
		t.Helper()
		var v int
		require.NoError(t, conn.QueryRow(ctxT(t), "SELECT $1::int", 7).Scan(&v))
		require.Equal(t, 7, v)
		require.Empty(t, pinReasonOf(t, adm, db, conn))
	}

	t.Run("simple", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []string
		var conns []*pgx.Conn
		for sql, reason := range map[string]string{
			"SELECT pg_advisory_lock(3)": "advisory_lock",
			// set_config of a name pgmux cannot read from the text: it pins.
			"SELECT set_config('search' || '_path', 'public', false)": "set",
			"CREATE TEMP TABLE t (x int)":                             "temp_object",
			// A PREPARE pgmux cannot record (one in a multi-statement Query it records).
			"DO $$BEGIN EXECUTE 'PREPARE q AS SELECT 1'; END$$": "prepare",
			"SET ROLE app": "role",
		} {
			conn := m.connect(t, db)
			conns = append(conns, conn)
			wg.Add(1)
			go func() { // all at once: each waits query_wait_timeout
				defer wg.Done()
				start := time.Now()
				_, err := conn.Exec(ctx, sql)
				mu.Lock()
				defer mu.Unlock()
				pe, ok := err.(*pgconn.PgError)
				switch {
				case !ok:
					failures = append(failures, fmt.Sprintf("%s: %v", sql, err))
				case pe.Code != "53300" || !strings.Contains(pe.Message, reason):
					failures = append(failures, fmt.Sprintf("%s: %s %s", sql, pe.Code, pe.Message))
				case time.Since(start) < wait-100*time.Millisecond:
					failures = append(failures, fmt.Sprintf("%s: refused after %v", sql, time.Since(start)))
				}
			}()
		}
		wg.Wait()
		require.Empty(t, failures)
		for _, conn := range conns {
			usable(t, conn)
		}
	})
	t.Run("extended", func(t *testing.T) {
		conn := m.connect(t, db)
		start := time.Now()
		_, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", 3)
		refused(t, err, "advisory_lock", start)
		usable(t, conn)
	})
	t.Run("in transaction/simple", func(t *testing.T) {
		conn := m.connect(t, db)
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		start := time.Now()
		_, err = tx.Exec(ctx, "SELECT pg_advisory_lock(4)")
		refused(t, err, "advisory_lock", start)
		require.NoError(t, tx.Rollback(ctx))
		usable(t, conn)
	})
	t.Run("in transaction/extended", func(t *testing.T) {
		conn := m.connect(t, db)
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		start := time.Now()
		_, err = tx.Exec(ctx, "SELECT pg_advisory_lock($1)", 5)
		refused(t, err, "advisory_lock", start)
		require.NoError(t, tx.Rollback(ctx))
		usable(t, conn)
	})
}
