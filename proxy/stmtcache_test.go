package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
)

// TestStmtCacheCounters: hits, misses, evictions and the published count follow every
// change to the cache, and looking up a statement allocates nothing.
func TestStmtCacheCounters(t *testing.T) {
	c := newStmtCache(2)
	present, _ := c.lookup("a", 0, nil)
	require.False(t, present)
	c.prepare("a", false, 0, nil, nil)
	c.prepare("b", false, 0, nil, nil)
	present, stale := c.lookup("a", 0, nil)
	require.True(t, present)
	require.False(t, stale)
	require.Equal(t, []string{"b"}, c.prepare("c", false, 0, nil, nil).Evicted) // "a" was used more recently
	require.Equal(t, uint64(1), c.Hits.Load())
	require.Equal(t, uint64(1), c.Misses.Load())
	require.Equal(t, uint64(1), c.Evictions.Load())
	require.Equal(t, int64(2), c.Prepared.Load())

	c.MarkStale("a")
	present, stale = c.lookup("a", 0, nil)
	require.True(t, present)
	require.True(t, stale)
	require.Equal(t, uint64(2), c.Misses.Load()) // a stale statement must be prepared again
	c.remove("a")
	require.Equal(t, int64(1), c.Prepared.Load())
	c.restore("a")
	require.Equal(t, int64(2), c.Prepared.Load())
	c.forget("a", 0)
	require.Equal(t, int64(1), c.Prepared.Load())
	c.clear()
	require.Equal(t, int64(0), c.Prepared.Load())
	require.Equal(t, 0, c.Len())

	c.prepare("a", false, 0, nil, nil)
	allocs := testing.AllocsPerRun(100, func() {
		c.lookup("a", 0, nil)
		c.lookup("x", 0, nil)
	})
	require.Zero(t, allocs)
}

// TestPrepStatsTotals: a pool's figures sum its connections' caches.
func TestPrepStatsTotals(t *testing.T) {
	ps := newPrepStats()
	c1, c2 := &pool.Conn{ID: 1}, &pool.Conn{ID: 2}
	s1, s2 := newStmtCache(10), newStmtCache(10)
	ps.register(c1, s1)
	ps.register(c2, s2)
	s1.lookup("a", 0, nil)
	s1.prepare("a", false, 0, nil, nil)
	s1.lookup("a", 0, nil)
	s2.lookup("b", 0, nil)
	s2.prepare("b", false, 0, nil, nil)
	s2.prepare("c", false, 0, nil, nil)
	got := ps.totals()
	require.Equal(t, prepCounts{prepared: 3, hits: 1, misses: 2}, got)
	require.Equal(t, prepCounts{prepared: 2, misses: 1}, ps.conn(c2))
	require.Equal(t, prepCounts{}, ps.conn(&pool.Conn{ID: 3}))
	var none *prepStats
	none.register(c1, s1) // a session without a pool registers nothing
}
