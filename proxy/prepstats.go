package proxy

import (
	"cmp"
	"slices"
	"sync"

	"github.com/pgmux/pgmux/pool"
)

// prepStats gathers the statement caches of one pool's server connections for SHOW
// PREPARED, SHOW PREPARED_SERVERS and the pgmux_prepared_ metrics. It is kept per pool
// key by pools (not per poolEntry), so a pool removed by a reload and created again
// keeps its cumulative figures.
//
// The relay pays nothing for it beyond the stmtCache's own atomics: a cache is registered
// once, when its connection gets one (stateOf), and the counters of a connection that has
// closed are folded into retired when a reader or the next registration notices, so the
// pool's totals never go down. Increments a session makes on a connection after it has
// been seen closed are not counted.
//
// Owners: mu guards live and retired. Sessions register caches from their own goroutines
// (stateOf); the console and the metrics collector read the figures from theirs. The
// counters themselves are the stmtCaches' atomics, read without their owners' locks.
type prepStats struct {
	mu      sync.Mutex
	live    map[*pool.Conn]*stmtCache
	retired prepCounts
}

// prepCounts are a pool's or a connection's statement cache figures at one instant.
type prepCounts struct {
	prepared                int64 // statements prepared now (open connections only)
	hits, misses, evictions uint64
	retries                 uint64
	unnamedHits             uint64 // unnamed-statement Parses served from the cache
	unnamedMisses           uint64
}

func (p *prepCounts) add(c *stmtCache) {
	p.prepared += c.Prepared.Load()
	p.hits += c.Hits.Load()
	p.misses += c.Misses.Load()
	p.evictions += c.Evictions.Load()
	p.retries += c.Retries.Load()
	p.unnamedHits += c.UnnamedHits.Load()
	p.unnamedMisses += c.UnnamedMisses.Load()
}

func newPrepStats() *prepStats {
	return &prepStats{live: make(map[*pool.Conn]*stmtCache)}
}

func connGone(c *pool.Conn) bool { return c.State() == pool.StateClosed }

// register records the cache of server connection c.
func (ps *prepStats) register(c *pool.Conn, sc *stmtCache) {
	if ps == nil {
		return
	}
	ps.mu.Lock()
	ps.pruneLocked()
	ps.live[c] = sc
	ps.mu.Unlock()
}

// pruneLocked folds the counters of closed connections into retired; ps.mu is held.
func (ps *prepStats) pruneLocked() {
	for c, sc := range ps.live {
		if connGone(c) {
			// Its statements went with it; its counters stay in the pool's totals.
			ps.retired.hits += sc.Hits.Load()
			ps.retired.misses += sc.Misses.Load()
			ps.retired.evictions += sc.Evictions.Load()
			ps.retired.retries += sc.Retries.Load()
			ps.retired.unnamedHits += sc.UnnamedHits.Load()
			ps.retired.unnamedMisses += sc.UnnamedMisses.Load()
			delete(ps.live, c)
		}
	}
}

// totals returns the pool's figures: statements prepared on its open connections, and
// hits, misses and evictions over every connection it has had.
func (ps *prepStats) totals() prepCounts {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.pruneLocked()
	t := ps.retired
	for _, sc := range ps.live {
		t.add(sc)
	}
	return t
}

// conn returns the figures of one open connection (zeros when it has no cache yet).
func (ps *prepStats) conn(c *pool.Conn) prepCounts {
	var out prepCounts
	ps.mu.Lock()
	if sc, ok := ps.live[c]; ok {
		out.add(sc)
	}
	ps.mu.Unlock()
	return out
}

// prepStatsFor returns the statement cache figures of pool key k, creating them on first
// use; ps.mu is held.
func (ps *pools) prepStatsFor(k poolKey) *prepStats {
	st, ok := ps.prep[k]
	if !ok {
		st = newPrepStats()
		ps.prep[k] = st
	}
	return st
}

// poolPrep is one pool's row of SHOW PREPARED and the metrics.
type poolPrep struct {
	key poolKey
	prepCounts
}

// preparedSnapshot returns every pool's statement cache figures, sorted by database and
// user, pools removed by a reload included.
func (s *Server) preparedSnapshot() []poolPrep {
	s.pools.mu.Lock()
	keys := make([]poolKey, 0, len(s.pools.prep))
	stats := make([]*prepStats, 0, len(s.pools.prep))
	for k, st := range s.pools.prep {
		keys = append(keys, k)
		stats = append(stats, st)
	}
	s.pools.mu.Unlock()
	out := make([]poolPrep, len(keys))
	for i := range keys {
		out[i] = poolPrep{key: keys[i], prepCounts: stats[i].totals()}
	}
	slices.SortFunc(out, func(a, b poolPrep) int {
		return cmp.Or(cmp.Compare(a.key.db, b.key.db), cmp.Compare(a.key.user, b.key.user))
	})
	return out
}
