package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
)

// TestRefusedDialKeepsWaitStart: a waiter whose reserve dial a shared cap
// (max_db_connections) refuses queues again as the client it is, waiting since it began:
// SHOW POOLS' maxwait and the wait time of the stats count its whole wait. The refusal
// used to restart its clock, so both counted only the wait after the reserve dial.
func TestRefusedDialKeepsWaitStart(t *testing.T) {
	t.Parallel()
	const reserveAfter = 300 * time.Millisecond
	lim := pool.NewLimit(1)
	p := newPool(t, pool.Options{Size: 1, ReserveSize: 1, ReserveTimeout: reserveAfter,
		Limits: []*pool.Limit{lim}})
	c, _ := acquire(t, p)
	start := time.Now()
	got := make(chan *pool.Conn, 1)
	go func() {
		r, err := p.AcquireTimeout(newLessee(), start, wait)
		if err != nil {
			r = nil
		}
		got <- r
	}()
	eventually(t, func() bool {
		st := p.Stats()
		return st.ReserveUsed == 1 && st.Waiting == 1
	}, "the reserve dial was refused and the client waits again")
	st := p.Stats()
	require.GreaterOrEqual(t, st.MaxWait, reserveAfter, "maxwait counts the wait before the reserve dial")
	c.Release(false)
	select {
	case r := <-got:
		require.NotNil(t, r)
		r.Release(false)
	case <-time.After(wait):
		t.Fatal("the waiter was not served")
	}
	st = p.Stats()
	require.Equal(t, uint64(1), st.WaitCount)
	require.GreaterOrEqual(t, st.WaitTotal, reserveAfter, "the wait time counts the whole wait")
}
