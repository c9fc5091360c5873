package link

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// addABC adds a, b and c in that order and returns what was evicted.
func addABC(c *StmtCache[*stmt]) []string { return c.Add("c", c.Add("b", c.Add("a", nil))) }

// TestStmtCacheLRU: the cache keeps its bound by evicting the least recently used, a use
// (a usable Lookup, Add of a present name) makes a statement the most recent, Restore puts
// a statement back as the least recent, and stale or missing ones are not touched.
func TestStmtCacheLRU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ops     func(c *StmtCache[*stmt]) []string // returns the evictions seen
		evicted []string
		names   []string // most recent first
	}{
		{"fills to its bound", func(c *StmtCache[*stmt]) []string {
			return addABC(c)
		}, nil, []string{"c", "b", "a"}},
		{"evicts the least recent", func(c *StmtCache[*stmt]) []string {
			ev := addABC(c)
			return c.Add("d", ev)
		}, []string{"a"}, []string{"d", "c", "b"}},
		{"a usable lookup is a use", func(c *StmtCache[*stmt]) []string {
			ev := addABC(c)
			c.Lookup("a", 0, nil)
			return c.Add("d", ev)
		}, []string{"b"}, []string{"d", "a", "c"}},
		{"a stale statement's lookup is not", func(c *StmtCache[*stmt]) []string {
			ev := addABC(c)
			c.MarkStale("a")
			c.Lookup("a", 0, nil)
			return c.Add("d", ev)
		}, []string{"a"}, []string{"d", "c", "b"}},
		{"adding a present name is a use and clears its staleness", func(c *StmtCache[*stmt]) []string {
			ev := addABC(c)
			c.MarkStale("a")
			ev = c.Add("a", ev)
			return c.Add("d", ev)
		}, []string{"b"}, []string{"d", "a", "c"}},
		{"restore comes back least recent, and first out", func(c *StmtCache[*stmt]) []string {
			ev := addABC(c)
			c.Remove("c")
			c.Restore("c")
			return c.Add("d", ev)
		}, []string{"c"}, []string{"d", "b", "a"}},
		{"restore of a present name changes nothing", func(c *StmtCache[*stmt]) []string {
			ev := c.Add("b", c.Add("a", nil))
			c.Restore("b")
			return ev
		}, nil, []string{"b", "a"}},
		{"clear empties it", func(c *StmtCache[*stmt]) []string {
			ev := c.Add("b", c.Add("a", nil))
			c.Clear()
			return c.Add("x", ev)
		}, nil, []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewStmtCache[*stmt](3)
			require.Equal(t, tc.evicted, tc.ops(c))
			require.Equal(t, tc.names, c.Names())
			require.Equal(t, len(tc.names), c.Len())
		})
	}
	unbounded := NewStmtCache[*stmt](0)
	var ev []string
	for i := range 100 {
		ev = unbounded.Add(fmt.Sprint(i), ev)
	}
	require.Empty(t, ev, "max 0: no bound")
	require.Equal(t, 100, unbounded.Len())
}

// TestStmtCachePreparations: a statement whose preparation is unanswered is trusted in
// the request that sent it and, in a later one, only by the client's own Parse of it;
// answers confirm it, and a failure forgets it only if no later preparation was sent.
func TestStmtCachePreparations(t *testing.T) {
	c := NewStmtCache[*stmt](0)
	own, other := &stmt{name: "own"}, &stmt{name: "other"}
	c.Add("s", nil)
	g1 := c.Preparing("s", 4, nil) // a hidden preparation in request 4
	_, stale := c.Lookup("s", 4, other)
	require.False(t, stale, "same request: the server skips the rest if it fails")
	_, stale = c.Lookup("s", 5, other)
	require.True(t, stale, "a later request prepares it again")
	c.Answered("s", g1)
	_, stale = c.Lookup("s", 5, other)
	require.False(t, stale, "answered")

	// The client's own Parse: its later Bind trusts it (if it failed, 26000 is right).
	c.Add("p", nil)
	gp := c.Preparing("p", 7, own)
	_, stale = c.Lookup("p", 8, own)
	require.False(t, stale)
	_, stale = c.Lookup("p", 8, other)
	require.True(t, stale)

	// Prepared again (Prepare: remove and add) before the first failed: the first one's
	// failure leaves the second's node.
	p2 := c.Prepare("p", true, 8, nil)
	require.Equal(t, Prep{Stale: true, Gen: gp + 1}, p2)
	c.Forget("p", gp)
	present, _ := c.Lookup("p", 8, nil)
	require.True(t, present)
	c.Answered("p", gp) // a stale answer confirms nothing
	_, stale = c.Lookup("p", 9, nil)
	require.True(t, stale)
	c.Forget("p", p2.Gen)
	present, _ = c.Lookup("p", 9, nil)
	require.False(t, present)

	// A stale statement survives a failed preparation: the server may still have it.
	c.Add("q", nil)
	gq := c.Preparing("q", 10, nil)
	c.MarkStale("q")
	c.Forget("q", gq)
	present, stale = c.Lookup("q", 10, nil)
	require.True(t, present)
	require.True(t, stale)
	c.Forget("q", 0)
	present, _ = c.Lookup("q", 10, nil)
	require.True(t, present, "gen 0 forgets only what is not stale")
	require.Zero(t, c.Preparing("absent", 1, nil), "no number for a statement not in the cache")
}

// TestStmtCachePrepare: what preparing a statement takes, in the order it is sent: the
// stale copy's Close, the evicted statements' Closes, the Parse with a fresh number.
func TestStmtCachePrepare(t *testing.T) {
	c := NewStmtCache[*stmt](2)
	p := c.Prepare("a", false, 1, nil)
	require.Equal(t, Prep{Gen: 1}, p)
	p = c.Prepare("b", false, 1, nil)
	require.Equal(t, Prep{Gen: 2}, p)
	p = c.Prepare("c", false, 2, nil)
	require.Equal(t, Prep{Evicted: []string{"a"}, Gen: 3}, p)
	present, stale := c.Lookup("b", 2, nil)
	require.True(t, present)
	require.True(t, stale, "b's preparation went in request 1 and is unanswered")
	p = c.Prepare("b", true, 2, nil)
	require.Equal(t, Prep{Stale: true, Gen: 4}, p, "the stale copy is closed; nothing evicted: it had its place")
	require.Equal(t, []string{"b", "c"}, c.Names())
	// A stale statement re-prepared when the cache is full of others still keeps the bound.
	c.MarkStale("c")
	p = c.Prepare("c", true, 3, nil)
	require.Equal(t, Prep{Stale: true, Gen: 5}, p)
	require.Equal(t, 2, c.Len())
}

// TestStmtCacheFind: a client's unnamed Parse finds a cached statement by its key, text
// and parameter types (a key alone may collide); only a usable one is touched.
func TestStmtCacheFind(t *testing.T) {
	c := NewStmtCache[*stmt](2)
	def := &stmt{name: "s1"}
	types := []byte{0, 1, 0, 0, 0, 23}
	c.Add("s1", nil)
	c.Attach("s1", def, 42, "SELECT $1", types)
	c.Attach("absent", &stmt{name: "x"}, 43, "SELECT 2", nil) // not in the cache: nothing to attach to

	got, found, usable := c.Find(42, []byte("SELECT $1"), types, 0)
	require.True(t, found)
	require.True(t, usable)
	require.Same(t, def, got)
	_, found, _ = c.Find(42, []byte("SELECT $2"), types, 0)
	require.False(t, found, "same key, other text")
	_, found, _ = c.Find(42, []byte("SELECT $1"), []byte{0, 0}, 0)
	require.False(t, found, "same text, other types")
	_, found, _ = c.Find(43, []byte("SELECT 2"), nil, 0)
	require.False(t, found)

	c.MarkStale("s1")
	got, found, usable = c.Find(42, []byte("SELECT $1"), types, 0)
	require.True(t, found)
	require.False(t, usable, "stale: prepared again before use")
	require.Same(t, def, got)

	// Evicted or removed, it is no longer found, and its key does not drop a newer node's.
	c.Add("s2", nil)
	c.Add("s3", nil) // evicts s1
	_, found, _ = c.Find(42, []byte("SELECT $1"), types, 0)
	require.False(t, found)
	c.Add("s1", nil)
	c.Attach("s1", def, 42, "SELECT $1", types)
	c.Add("other", nil)
	c.Attach("other", &stmt{name: "o"}, 42, "SELECT 9", nil) // the same key, a newer node
	c.Remove("s1")
	_, found, _ = c.Find(42, []byte("SELECT 9"), nil, 0)
	require.True(t, found, "dropping s1 left the key's newer node")
}

// FuzzStmtCache drives the cache with random operations and checks it against a model: a
// list of names, most recent first, each with its staleness. The bound holds, evictions
// are the model's least recent, and Lookup answers as the model does.
func FuzzStmtCache(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 4, 1, 1, 2, 2, 3, 3, 4, 0})
	f.Add([]byte{0, 0, 0, 0, 5, 0, 6, 1, 0, 1, 7, 2, 1, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const max = 3
		c := NewStmtCache[*stmt](max)
		type entry struct {
			name  string
			stale bool
		}
		var model []entry // most recent first
		find := func(name string) int {
			return slices.IndexFunc(model, func(e entry) bool { return e.name == name })
		}
		toFront := func(i int) {
			e := model[i]
			model = slices.Delete(model, i, i+1)
			model = slices.Insert(model, 0, e)
		}
		// add is Add on the model: a present name is used and no longer stale, a new one
		// goes first and the least recent beyond the bound are evicted (returned).
		add := func(name string) (evicted []string) {
			if j := find(name); j >= 0 {
				model[j].stale = false
				toFront(j)
				return nil
			}
			model = slices.Insert(model, 0, entry{name: name})
			for len(model) > max {
				evicted = append(evicted, model[len(model)-1].name)
				model = model[:len(model)-1]
			}
			return evicted
		}
		for i := 0; i+1 < len(ops) && i < 400; i += 2 {
			name := fmt.Sprint("s", ops[i+1]%6)
			switch ops[i] % 8 {
			case 0: // Add
				ev := c.Add(name, nil)
				require.Equal(t, add(name), ev, "evicted by Add(%s)", name)
			case 1: // Lookup
				present, stale := c.Lookup(name, 0, nil)
				j := find(name)
				require.Equal(t, j >= 0, present, "Lookup(%s) present", name)
				if j >= 0 {
					require.Equal(t, model[j].stale, stale, "Lookup(%s) stale", name)
					if !stale {
						toFront(j)
					}
				}
			case 2: // MarkStale
				c.MarkStale(name)
				if j := find(name); j >= 0 {
					model[j].stale = true
				}
			case 3: // Remove
				c.Remove(name)
				if j := find(name); j >= 0 {
					model = slices.Delete(model, j, j+1)
				}
			case 4: // Restore
				c.Restore(name)
				if find(name) < 0 {
					model = append(model, entry{name: name})
				}
			case 5: // Forget (any preparation)
				c.Forget(name, 0)
				if j := find(name); j >= 0 && !model[j].stale {
					model = slices.Delete(model, j, j+1)
				}
			case 6: // Prepare, stale when the model says so
				j := find(name)
				stale := j >= 0 && model[j].stale
				p := c.Prepare(name, stale, 0, nil)
				if stale {
					model = slices.Delete(model, j, j+1)
				}
				require.Equal(t, stale, p.Stale)
				require.Equal(t, add(name), p.Evicted, "evicted by Prepare(%s)", name)
				require.NotZero(t, p.Gen)
				c.Answered(name, p.Gen)
			case 7: // Clear
				c.Clear()
				model = nil
			}
			names := make([]string, len(model))
			for k, e := range model {
				names[k] = e.name
			}
			require.Equal(t, names, c.Names(), "after op %d", i/2)
			require.Equal(t, len(names), c.Len())
		}
	})
}
