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
	c.add("a", nil)
	c.add("b", nil)
	present, stale := c.lookup("a", 0, nil)
	require.True(t, present)
	require.False(t, stale)
	require.Equal(t, []string{"b"}, c.add("c", nil)) // "a" was used more recently
	require.Equal(t, uint64(1), c.Hits.Load())
	require.Equal(t, uint64(1), c.Misses.Load())
	require.Equal(t, uint64(1), c.Evictions.Load())
	require.Equal(t, int64(2), c.Prepared.Load())

	c.markStale("a")
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
	require.Equal(t, 0, c.size())

	c.add("a", nil)
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
	s1.add("a", nil)
	s1.lookup("a", 0, nil)
	s2.lookup("b", 0, nil)
	s2.add("b", nil)
	s2.add("c", nil)
	got := ps.totals()
	require.Equal(t, prepCounts{prepared: 3, hits: 1, misses: 2}, got)
	require.Equal(t, prepCounts{prepared: 2, misses: 1}, ps.conn(c2))
	require.Equal(t, prepCounts{}, ps.conn(&pool.Conn{ID: 3}))
	var none *prepStats
	none.register(c1, s1) // a session without a pool registers nothing
}

// TestStmtCachePreparations: a statement whose preparation is unanswered is trusted in
// the request that sent it and, in a later one, only by the client's own Parse of it;
// answers confirm it, and a failure forgets it only if no later preparation was sent.
func TestStmtCachePreparations(t *testing.T) {
	c := newStmtCache(0)
	own, other := &stmtDef{}, &stmtDef{}
	c.add("s", nil)
	g1 := c.preparing("s", 4, nil) // a hidden preparation in request 4
	_, stale := c.lookup("s", 4, other)
	require.False(t, stale, "same request: the server skips the rest if it fails")
	_, stale = c.lookup("s", 5, other)
	require.True(t, stale, "a later request prepares it again")
	c.prepared("s", g1)
	_, stale = c.lookup("s", 5, other)
	require.False(t, stale, "answered")

	// The client's own Parse: its later Bind trusts it (if it failed, 26000 is right).
	c.add("p", nil)
	gp := c.preparing("p", 7, own)
	_, stale = c.peek("p", 8, own)
	require.False(t, stale)
	_, stale = c.peek("p", 8, other)
	require.True(t, stale)

	// Prepared again (remove and add, as prepareOn does) before the first failed: the
	// first one's failure leaves the second's node.
	c.remove("p")
	c.add("p", nil)
	g2 := c.preparing("p", 8, nil)
	c.forget("p", gp)
	present, _ := c.lookup("p", 8, nil)
	require.True(t, present)
	c.prepared("p", gp) // a stale answer confirms nothing
	_, stale = c.lookup("p", 9, nil)
	require.True(t, stale)
	c.forget("p", g2)
	present, _ = c.lookup("p", 9, nil)
	require.False(t, present)
}
