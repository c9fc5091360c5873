package link

// StmtCache is the set of statements pgmux has prepared on one server connection, under
// pgmux's names, shared by every client that gets this server and kept to a bounded size
// in least-recently-used order; with each, the state of its latest preparation (sent and
// not answered yet, or known) and whether the server has said its plan is stale. D is
// the caller's statement (proxy's *stmtDef), which the cache only stores and compares.
//
// It counts nothing: the caller keeps the figures the admin console reads (hits, misses,
// evictions, the number prepared) from what these methods return.
//
// Owners: it has no lock of its own; whoever holds it guards it (in package proxy, the
// session that holds the server's lease, under Session.mu, and between leases the pool's
// reset).
type StmtCache[D comparable] struct {
	max   int
	items map[string]*stmtNode[D]
	// byKey finds statements by the key of their text and parameter types, for the
	// client's unnamed statements (Attach, Find); made on first use, it holds only the
	// nodes that carry their statement.
	byKey map[uint64]*stmtNode[D]
	// the LRU list: head.next is the most recently used
	head stmtNode[D]
	gens uint32 // preparations numbered so far
}

// stmtNode is one statement of a StmtCache.
//
// Owners: its cache's; nothing outside the cache holds a node.
type stmtNode[D comparable] struct {
	name  string
	stale bool // the server reported the plan unusable: close and prepare again
	// def and what Find compares (Attach): its key, text and parameter type section.
	def   D
	key   uint64
	query string
	types []byte
	// The node's latest preparation: its number (the expect of its Parse or PREPARE
	// carries it), and while it is unanswered, the link's request count when it was sent
	// plus one (0 once the server answered it). owner is the statement whose own Parse
	// by the client it is: if that fails, the client's statement is gone with it.
	gen        uint32
	sentAt     uint64
	owner      D
	prev, next *stmtNode[D]
}

// NewStmtCache returns an empty cache holding at most max statements (0: no bound).
func NewStmtCache[D comparable](max int) *StmtCache[D] {
	c := new(StmtCache[D])
	c.Init(max)
	return c
}

// Init makes c an empty cache holding at most max statements, in place (for a StmtCache
// inside another value: its list points at its own address, so it is not copied after).
func (c *StmtCache[D]) Init(max int) {
	c.max, c.items, c.byKey, c.gens = max, make(map[string]*stmtNode[D]), nil, 0
	c.head.prev, c.head.next = &c.head, &c.head
}

// Max returns the bound; SetMax changes it for the statements added from now on (a
// RELOAD of max_prepared_statements).
func (c *StmtCache[D]) Max() int { return c.max }

// SetMax sets the bound (see Max).
func (c *StmtCache[D]) SetMax(max int) { c.max = max }

// Len reports how many statements are prepared.
func (c *StmtCache[D]) Len() int { return len(c.items) }

// Names returns the statements' names, most recently used first.
func (c *StmtCache[D]) Names() []string {
	out := make([]string, 0, len(c.items))
	for n := c.head.next; n != &c.head; n = n.next {
		out = append(out, n.name)
	}
	return out
}

func (c *StmtCache[D]) unlink(n *stmtNode[D]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *StmtCache[D]) front(n *stmtNode[D]) {
	n.prev, n.next = &c.head, c.head.next
	c.head.next.prev = n
	c.head.next = n
}

// Lookup reports whether name is prepared, and whether it is stale (to be closed and
// prepared again before use); a usable one becomes the most recently used. A statement
// whose preparation was sent in an earlier request of the link (req is the link's
// request count now) and is not answered yet counts as stale, unless it is def's own
// Parse: that preparation may still fail (a transaction that failed meanwhile refuses
// it) while the request about to be sent would not, so it is closed and prepared again,
// which is right either way.
func (c *StmtCache[D]) Lookup(name string, req uint64, def D) (present, stale bool) {
	n, ok := c.items[name]
	if !ok {
		return false, false
	}
	if n.stale || n.doubtful(req, def) {
		return true, true
	}
	c.unlink(n)
	c.front(n)
	return true, false
}

// Add records name as prepared, the most recently used, and returns evicted with the
// names dropped to make room appended (each is to be closed on the server).
func (c *StmtCache[D]) Add(name string, evicted []string) []string {
	if n, ok := c.items[name]; ok {
		n.stale = false
		c.unlink(n)
		c.front(n)
		return evicted
	}
	n := &stmtNode[D]{name: name}
	c.items[name] = n
	c.front(n)
	for c.max > 0 && len(c.items) > c.max {
		last := c.head.prev
		c.drop(last)
		evicted = append(evicted, last.name)
	}
	return evicted
}

// Restore records name as prepared without evicting anything, the least recently used:
// a Close pgmux sent was skipped by the server, so the statement is still there.
func (c *StmtCache[D]) Restore(name string) {
	if _, ok := c.items[name]; ok {
		return
	}
	n := &stmtNode[D]{name: name}
	c.items[name] = n
	n.prev, n.next = c.head.prev, &c.head
	c.head.prev.next = n
	c.head.prev = n
}

// Remove forgets name (its Parse failed, or it was closed).
func (c *StmtCache[D]) Remove(name string) {
	if n, ok := c.items[name]; ok {
		c.drop(n)
	}
}

// Forget drops name after its preparation numbered gen failed or was skipped, unless it
// is marked stale or prepared again since (gen 0: whichever): a stale entry may still
// exist on the server, and its next use closes it before preparing, which is right
// either way, while a missing entry would make pgmux Parse over a live one.
func (c *StmtCache[D]) Forget(name string, gen uint32) {
	if n, ok := c.items[name]; ok && !n.stale && (gen == 0 || n.gen == gen) {
		c.drop(n)
	}
}

// MarkStale flags name so that its next use closes and prepares it again.
func (c *StmtCache[D]) MarkStale(name string) {
	if n, ok := c.items[name]; ok {
		n.stale = true
	}
}

// MarkAllStale flags every statement so that each is closed and prepared again at its
// next use.
func (c *StmtCache[D]) MarkAllStale() {
	for _, n := range c.items {
		n.stale = true
	}
}

// Clear forgets everything (DISCARD ALL, DEALLOCATE ALL, the reset query).
func (c *StmtCache[D]) Clear() {
	c.items = make(map[string]*stmtNode[D])
	c.byKey = nil
	c.head.prev, c.head.next = &c.head, &c.head
}

// drop unlinks n and forgets it in both indexes.
func (c *StmtCache[D]) drop(n *stmtNode[D]) {
	c.unlink(n)
	delete(c.items, n.name)
	var none D
	if n.def != none && c.byKey[n.key] == n {
		delete(c.byKey, n.key)
	}
}

// Attach records def on name's node, when present, with the key, text and parameter
// type section of its Parse: a client's Parse of the unnamed statement with the same
// ones finds it (Find).
func (c *StmtCache[D]) Attach(name string, def D, key uint64, query string, types []byte) {
	n, ok := c.items[name]
	if !ok {
		return
	}
	n.def, n.key, n.query, n.types = def, key, query, types
	if c.byKey == nil {
		c.byKey = make(map[uint64]*stmtNode[D])
	}
	c.byKey[key] = n
}

// Find returns the statement attached with this key, text and parameter types, and
// whether it is usable now (as Lookup: not stale, not an unanswered preparation of an
// earlier request but def's own); a usable one becomes the most recently used.
func (c *StmtCache[D]) Find(key uint64, query, types []byte, req uint64) (def D, found, usable bool) {
	n := c.byKey[key]
	if n == nil || n.query != string(query) || string(n.types) != string(types) {
		return def, false, false
	}
	if n.stale || n.doubtful(req, n.def) {
		return n.def, true, false
	}
	c.unlink(n)
	c.front(n)
	return n.def, true, true
}

// doubtful reports whether n's preparation is unanswered and was sent before the link's
// request req, by other than def's own Parse.
func (n *stmtNode[D]) doubtful(req uint64, def D) bool {
	var none D
	return n.sentAt != 0 && n.sentAt != req+1 && (n.owner == none || n.owner != def)
}

// Preparing records that name's preparation goes out in the link's request req (owner:
// the client's statement whose own Parse it is, or the zero D), and returns the
// preparation's number for its expect (0 when name is not in the cache).
func (c *StmtCache[D]) Preparing(name string, req uint64, owner D) uint32 {
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

// Answered records the server's answer to preparation gen of name: it is there.
func (c *StmtCache[D]) Answered(name string, gen uint32) {
	if n, ok := c.items[name]; ok && gen != 0 && n.gen == gen {
		var none D
		n.sentAt, n.owner = 0, none
	}
}

// Prep is what preparing one statement on a server takes, in the order it is sent: a
// Close of the stale copy (Stale), Closes of the statements evicted to make room
// (Evicted), then the Parse (or PREPARE) numbered Gen.
type Prep struct {
	Stale   bool
	Evicted []string
	Gen     uint32
}

// Prepare records that name is prepared anew in the link's request req and returns what
// that takes: stale says the server has a copy to close first (Lookup's answer); owner
// is as Preparing's.
func (c *StmtCache[D]) Prepare(name string, stale bool, req uint64, owner D) Prep {
	if stale {
		c.Remove(name)
	}
	evicted := c.Add(name, nil)
	return Prep{Stale: stale, Evicted: evicted, Gen: c.Preparing(name, req, owner)}
}
