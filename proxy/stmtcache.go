package proxy

import "sync/atomic"

// stmtCache is the set of statements pgmux has prepared on one server connection, named
// by pgmux and shared by every client that gets this server, kept to a bounded size in
// least-recently-used order. It lives in the connection's serverState and is used only
// by the session that holds the lease (under its mu), and between leases by the pool's
// reset (serverState.ServerReset, on the connection's reader goroutine).
//
// The counters are atomics written only by those and read by the admin console and the
// metrics collector from other goroutines (through prepStats, never through
// serverState): Hits, Misses and Evictions are cumulative over the connection's life,
// and Prepared mirrors size() after every change.
type stmtCache struct {
	max   int
	items map[string]*stmtNode
	// byKey finds statements by their stmtDef.key for unnamed-statement Parses
	// (unnamed.go); made on first use, it holds only nodes that carry their def.
	byKey map[uint64]*stmtNode
	// the LRU list: head.next is the most recently used
	head stmtNode
	gens uint32 // preparations numbered so far

	Hits, Misses, Evictions atomic.Uint64
	Retries                 atomic.Uint64 // requests sent again after 0A000 (retry.go)
	// Unnamed-statement Parses (cache_unnamed_statements): served from the cache, and not.
	UnnamedHits, UnnamedMisses atomic.Uint64
	Prepared                   atomic.Int64
}

// stmtNode is one statement of a stmtCache, owned as its cache is.
type stmtNode struct {
	name  string
	stale bool     // the server reported the plan unusable: close and prepare again
	def   *stmtDef // when known (addDef): lets unnamed Parses find it by key
	// The node's latest preparation: its number (the expect of its Parse or PREPARE
	// carries it), and while it is unanswered, the link's request count when it was sent
	// plus one (0 once the server answered it). owner is the statement whose own Parse
	// by the client it is: if that fails, the client's statement is gone with it.
	gen        uint32
	sentAt     uint64
	owner      *stmtDef
	prev, next *stmtNode
}

func newStmtCache(max int) *stmtCache {
	c := &stmtCache{max: max, items: make(map[string]*stmtNode)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *stmtCache) unlink(n *stmtNode) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *stmtCache) front(n *stmtNode) {
	n.prev, n.next = &c.head, c.head.next
	c.head.next.prev = n
	c.head.next = n
}

// lookup reports whether name is prepared (and usable), marking it recently used. A
// statement whose preparation was sent in an earlier request of the link (req is the
// link's request count now) and is not answered yet counts as stale, unless it is def's
// own Parse: that preparation may still fail (a transaction that failed meanwhile
// refuses it) while the request about to be sent would not, so it is closed and
// prepared again, which is right either way.
func (c *stmtCache) lookup(name string, req uint64, def *stmtDef) (present, stale bool) {
	n, ok := c.items[name]
	if !ok {
		c.Misses.Add(1)
		return false, false
	}
	if n.stale || n.doubtful(req, def) {
		c.Misses.Add(1)
		return true, true
	}
	c.Hits.Add(1)
	c.unlink(n)
	c.front(n)
	return true, false
}

// add records name as prepared and returns the names evicted to make room.
func (c *stmtCache) add(name string, evicted []string) []string {
	if n, ok := c.items[name]; ok {
		n.stale = false
		c.unlink(n)
		c.front(n)
		return evicted
	}
	n := &stmtNode{name: name}
	c.items[name] = n
	c.front(n)
	for c.max > 0 && len(c.items) > c.max {
		last := c.head.prev
		c.drop(last)
		c.Evictions.Add(1)
		evicted = append(evicted, last.name)
	}
	c.counted()
	return evicted
}

// restore records name as prepared without evicting anything: a Close pgmux sent was
// skipped by the server, so the statement is still there.
func (c *stmtCache) restore(name string) {
	if _, ok := c.items[name]; ok {
		return
	}
	n := &stmtNode{name: name}
	c.items[name] = n
	n.prev, n.next = c.head.prev, &c.head
	c.head.prev.next = n
	c.head.prev = n
	c.counted()
}

// remove forgets name (its Parse failed, or it was closed).
func (c *stmtCache) remove(name string) {
	if n, ok := c.items[name]; ok {
		c.drop(n)
		c.counted()
	}
}

// forget drops name after its preparation numbered gen failed or was skipped, unless it
// is marked stale or prepared again since: a stale entry may still exist on the server,
// and its next use closes it before preparing, which is right either way, while a
// missing entry would make pgmux Parse over a live one.
func (c *stmtCache) forget(name string, gen uint32) {
	if n, ok := c.items[name]; ok && !n.stale && (gen == 0 || n.gen == gen) {
		c.drop(n)
		c.counted()
	}
}

// markStale flags name so the next use closes and prepares it again.
func (c *stmtCache) markStale(name string) {
	if n, ok := c.items[name]; ok {
		n.stale = true
	}
}

// clear forgets everything (DISCARD ALL, DEALLOCATE ALL, reset query).
func (c *stmtCache) clear() {
	c.items = make(map[string]*stmtNode)
	c.byKey = nil
	c.head.prev, c.head.next = &c.head, &c.head
	c.counted()
}

// counted publishes the number of prepared statements for readers on other goroutines.
func (c *stmtCache) counted() { c.Prepared.Store(int64(len(c.items))) }

// size reports how many statements are prepared.
func (c *stmtCache) size() int { return len(c.items) }

// drop unlinks n and forgets it in both indexes; the caller publishes the count.
func (c *stmtCache) drop(n *stmtNode) {
	c.unlink(n)
	delete(c.items, n.name)
	if n.def != nil && c.byKey[n.def.key] == n {
		delete(c.byKey, n.def.key)
	}
}

// addDef is add for a statement whose definition pgmux holds: unnamed-statement Parses
// of the same text and parameter types find it (findByKey).
func (c *stmtCache) addDef(def *stmtDef, evicted []string) []string {
	evicted = c.add(def.server, evicted)
	c.attach(def)
	return evicted
}

// attach records def on its node, when present, for findByKey.
func (c *stmtCache) attach(def *stmtDef) {
	n, ok := c.items[def.server]
	if !ok {
		return
	}
	n.def = def
	if c.byKey == nil {
		c.byKey = make(map[uint64]*stmtNode)
	}
	c.byKey[def.key] = n
}

// findByKey returns the statement with the given key, query and parameter types, or nil.
// It counts nothing and does not touch the LRU order.
func (c *stmtCache) findByKey(key uint64, query, types []byte) *stmtNode {
	n := c.byKey[key]
	if n == nil || n.def.query != string(query) || string(n.def.types) != string(types) {
		return nil
	}
	return n
}

// touch marks n most recently used.
func (c *stmtCache) touch(n *stmtNode) {
	c.unlink(n)
	c.front(n)
}

// peek is lookup without counting: for uses of a statement the counters already saw.
func (c *stmtCache) peek(name string, req uint64, def *stmtDef) (present, stale bool) {
	n, ok := c.items[name]
	if !ok {
		return false, false
	}
	stale = n.stale || n.doubtful(req, def)
	if !stale {
		c.touch(n)
	}
	return true, stale
}

// doubtful reports whether n's preparation is unanswered and was sent before the link's
// request req, by other than def's own Parse.
func (n *stmtNode) doubtful(req uint64, def *stmtDef) bool {
	return n.sentAt != 0 && n.sentAt != req+1 && (n.owner == nil || n.owner != def)
}

// preparing records that name's preparation goes out in the link's request req (owner:
// the client's own Parse of that statement, or nil), and returns the preparation's
// number for its expect. name is in the cache (add, addDef).
func (c *stmtCache) preparing(name string, req uint64, owner *stmtDef) uint32 {
	n, ok := c.items[name]
	if !ok {
		return 0
	}
	c.gens++
	if c.gens == 0 {
		c.gens = 1
	}
	n.gen, n.sentAt, n.owner = c.gens, req+1, owner
	return n.gen
}

// prepared records the server's answer to preparation gen of name: it is there.
func (c *stmtCache) prepared(name string, gen uint32) {
	if n, ok := c.items[name]; ok && gen != 0 && n.gen == gen {
		n.sentAt, n.owner = 0, nil
	}
}
