package proxy

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// The registry of logged-in clients costs an idle client a slot, about 8 bytes, not a map
// entry (36 bytes at 2,000 clients, measured). The figure is the live heap the registry
// adds for 20,000 registered clients.
func TestClientRegistryBytesPerClient(t *testing.T) {
	srv := plainServer(t)
	require.NoError(t, srv.Close()) // its idle sweep stops
	const n = 20000
	ss := make([]Session, n)
	before := liveHeap()
	for i := range ss {
		srv.register(&ss[i])
	}
	perClient := float64(liveHeap()-before) / n
	t.Logf("registry: %.1f bytes a client", perClient)
	require.Less(t, perClient, 16.0)
	require.Len(t, srv.Sessions(), n)
	for i := range ss {
		srv.unregister(&ss[i])
	}
	require.Empty(t, srv.Sessions())
	runtime.KeepAlive(ss)
}

// plainServer is a Server made by New from the default configuration, without the
// metrics listener; the caller closes it.
func plainServer(t *testing.T) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.MetricsAddr = ""
	srv, err := New(Options{Config: cfg})
	require.NoError(t, err)
	return srv
}

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A cancel key finds its client and no other: a wrong key, a client gone, or a slot
// reused by another client (a new key) finds nothing.
func TestCancelKeysExact(t *testing.T) {
	var tab clientTable
	a, b, c := &Session{cancelKey: 7}, &Session{cancelKey: 8}, &Session{cancelKey: 9}
	a.cancelPID, b.cancelPID = tab.add(a), tab.add(b)
	require.NotEqual(t, a.cancelPID, b.cancelPID)
	require.NotZero(t, a.cancelPID, "PID 0 is no client's")
	require.Same(t, a, tab.lookup(a.cancelPID, 7))
	require.Same(t, b, tab.lookup(b.cancelPID, 8))
	require.Nil(t, tab.lookup(a.cancelPID, 8), "a wrong key")
	require.Nil(t, tab.lookup(0, 7))
	require.Nil(t, tab.lookup(99, 7), "no such slot")

	tab.remove(a, a.cancelPID)
	require.Nil(t, tab.lookup(a.cancelPID, 7), "a client gone")
	c.cancelPID = tab.add(c)
	require.Len(t, tab.slots, 2, "its slot is taken again")
	require.NotEqual(t, a.cancelPID, c.cancelPID, "under another PID")
	require.Nil(t, tab.lookup(a.cancelPID, 7), "the old key finds nothing")
	require.Same(t, c, tab.lookup(c.cancelPID, 9))
	tab.remove(a, a.cancelPID) // a is not there: c stays
	require.Same(t, c, tab.lookup(c.cancelPID, 9))
	require.ElementsMatch(t, []*Session{b, c}, tab.appendTo(nil))
	require.Equal(t, 2, tab.n)
}

// TestCancelPIDsHideSlots: the PIDs of a table's clients say nothing of their slots:
// over many clients they spread over the 32 bits, and a table of its own (another
// pgmux) gives the same slot and key another PID.
func TestCancelPIDsHideSlots(t *testing.T) {
	var tab, other clientTable
	const n = 1000
	ss := make([]Session, n)
	high := 0
	for i := range ss {
		ss[i].cancelKey = uint32(i) // the worst case: keys in a row
		ss[i].cancelPID = tab.add(&ss[i])
		require.NotZero(t, ss[i].cancelPID)
		if ss[i].cancelPID >= 1<<31 {
			high++
		}
		require.Same(t, &ss[i], tab.lookup(ss[i].cancelPID, ss[i].cancelKey))
	}
	require.InDelta(t, n/2, high, n/10, "the top bit is set in about half the PIDs")
	x := Session{cancelKey: 0}
	require.NotEqual(t, ss[0].cancelPID, other.add(&x), "another table, another PID")
	for i := range ss {
		tab.remove(&ss[i], ss[i].cancelPID)
	}
	require.Zero(t, tab.n)
}
