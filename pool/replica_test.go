package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

// TestReadYourWritesPrimitives: PrimaryLSN serves many concurrent callers with a position
// at or after their commits, and WaitReplay returns once a standby delayed by
// recovery_min_apply_delay has replayed it (and not before), or at its deadline.
func TestReadYourWritesPrimitives(t *testing.T) {
	primary := pgtest.StartPrivate(t)
	// The delay must outlast what the test does between the commit and its first
	// WaitReplay (PrimaryLSN's first read logs in to the primary): 300 ms left a loaded
	// machine with race-built code about 280 ms.
	standby := primary.StartStandby(t, "recovery_min_apply_delay = '1500ms'")
	cl := pool.NewCluster(pool.ClusterOptions{Endpoints: []pool.Endpoint{
		{Host: standby.Host, Port: standby.Port}, {Host: primary.Host, Port: primary.Port}}})
	defer cl.Close()
	cl.Watch(func() *pool.Target { return appTarget(primary) }, 5*time.Second)
	require.Eventually(t, func() bool { return cl.HasPrimary() && len(cl.Standbys(0)) == 1 },
		20*time.Second, 10*time.Millisecond)
	sb := cl.Standbys(0)[0].Host

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc := primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	sc := standby.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	_, err := pc.Exec(ctx, "CREATE TABLE rywp (n int)")
	require.NoError(t, err)
	var committed string
	require.NoError(t, pc.QueryRow(ctx, "INSERT INTO rywp VALUES (1) RETURNING pg_current_wal_insert_lsn()::text").Scan(&committed))
	commitLSN, err := pool.ParseLSN(committed)
	require.NoError(t, err)

	var wg sync.WaitGroup
	lsns := make([]uint64, 20)
	for i := range lsns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lsn, err := cl.PrimaryLSN(ctx)
			require.NoError(t, err)
			lsns[i] = lsn
		}(i)
	}
	wg.Wait()
	for _, lsn := range lsns {
		require.GreaterOrEqual(t, lsn, commitLSN, "read after the commit")
	}

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	err = sb.WaitReplay(short, lsns[0])
	cancelShort()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the delayed standby has not replayed it yet")

	start := time.Now()
	require.NoError(t, sb.WaitReplay(ctx, lsns[0]))
	t.Logf("standby replayed the commit %v after the wait began", time.Since(start))
	var n int
	require.NoError(t, sc.QueryRow(ctx, "SELECT count(*) FROM rywp").Scan(&n))
	require.Equal(t, 1, n, "the row is visible on the standby once WaitReplay returns")

	// A later commit: the hosts' checker's next read of the primary covers it.
	require.NoError(t, pc.QueryRow(ctx, "INSERT INTO rywp VALUES (2) RETURNING pg_current_wal_insert_lsn()::text").Scan(&committed))
	commitLSN, err = pool.ParseLSN(committed)
	require.NoError(t, err)
	committedAt := time.Now()
	_, known := cl.PrimaryLSNAfter(committedAt)
	require.False(t, known, "no check was sent after the commit yet")
	require.Eventually(t, func() bool {
		lsn, ok := cl.PrimaryLSNAfter(committedAt)
		return ok && lsn >= commitLSN
	}, 10*time.Second, 10*time.Millisecond, "the hosts' checker (every second) reads a position after the commit")
}
