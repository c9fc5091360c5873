package proxy

import (
	"sync/atomic"

	"github.com/pgmux/pgmux/proxy/link"
)

// stmtCache is one server connection's statement cache (link.StmtCache: the statements
// pgmux prepared there, their LRU order and their preparations' state, pure code) with
// the figures SHOW PREPARED_STATEMENTS and the metrics read. It lives in the connection's
// serverState and is used only by the session that holds the lease (under its mu), and
// between leases by the pool's reset (serverState.ServerReset, on the connection's
// reader goroutine).
//
// The counters are atomics written only by those and read by the admin console and the
// metrics collector from other goroutines (through prepStats, never through
// serverState): Hits, Misses and Evictions are cumulative over the connection's life,
// and Prepared mirrors the cache's size after every change.
type stmtCache struct {
	link.StmtCache[*stmtDef]

	Hits, Misses, Evictions atomic.Uint64
	Retries                 atomic.Uint64 // requests sent again after 0A000 (retry.go)
	// Unnamed-statement Parses (cache_unnamed_statements): served from the cache, and not.
	UnnamedHits, UnnamedMisses atomic.Uint64
	Prepared                   atomic.Int64
}

func newStmtCache(max int) *stmtCache {
	c := new(stmtCache)
	c.Init(max)
	return c
}

// lookup is Lookup, counted as a hit (present and usable) or a miss.
func (c *stmtCache) lookup(name string, req uint64, def *stmtDef) (present, stale bool) {
	present, stale = c.Lookup(name, req, def)
	if present && !stale {
		c.Hits.Add(1)
	} else {
		c.Misses.Add(1)
	}
	return present, stale
}

// peek is Lookup without counting: for uses of a statement the counters already saw.
func (c *stmtCache) peek(name string, req uint64, def *stmtDef) (present, stale bool) {
	return c.Lookup(name, req, def)
}

// prepare is Prepare, counting the evictions; def, when not nil, is attached for the
// client's unnamed Parses of the same text (link.StmtCache.Find).
func (c *stmtCache) prepare(name string, stale bool, req uint64, owner, def *stmtDef) link.Prep {
	p := c.Prepare(name, stale, req, owner)
	if def != nil {
		c.Attach(name, def, def.key, def.query, def.types)
	}
	if len(p.Evicted) > 0 {
		c.Evictions.Add(uint64(len(p.Evicted)))
	}
	c.counted()
	return p
}

// restore, remove, forget and clear are the cache's, with the count published.
func (c *stmtCache) restore(name string) { c.Restore(name); c.counted() }

func (c *stmtCache) remove(name string) { c.Remove(name); c.counted() }

func (c *stmtCache) forget(name string, gen uint32) { c.Forget(name, gen); c.counted() }

func (c *stmtCache) clear() { c.Clear(); c.counted() }

// counted publishes the number of prepared statements for readers on other goroutines.
func (c *stmtCache) counted() { c.Prepared.Store(int64(c.Len())) }

// closesFor appends what goes before a preparation p of a statement named name: the
// Close of its stale copy and of each statement evicted to make room, with their
// expectations.
func closesFor(b []byte, es []expect, name string, p link.Prep) ([]byte, []expect) {
	if p.Stale {
		b = link.AppendClose(b, 'S', name)
		es = append(es, expect{Kind: 'C', Hide: true, Stmt: name, Stale: true})
	}
	for _, ev := range p.Evicted {
		b = link.AppendClose(b, 'S', ev)
		es = append(es, expect{Kind: 'C', Hide: true, Stmt: ev})
	}
	return b, es
}
