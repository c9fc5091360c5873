package proxy

import (
	"runtime"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/console"
)

// showMem answers SHOW MEM. PgBouncer lists its slab caches; pgmux has none, so it
// reports its main objects (size of one, how many live) and the Go heap as a whole.
func (s *Server) showMem() []byte {
	sessions := s.Sessions()
	working := 0 // clients holding their working state: all but those parked with nothing of their own
	for _, sess := range sessions {
		sess.mu.Lock()
		if sess.sessionWork != nil {
			working++
		}
		sess.mu.Unlock()
	}
	clients := len(sessions)
	entries := s.pools.all()
	servers := 0
	for _, e := range entries {
		st := e.pool.Stats()
		servers += st.Connected + st.Login
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := console.NewResult(nil, console.Text("name"), console.Int4("size"), console.Int8("used"), console.Int8("free"), console.Int8("memtotal"))
	obj := func(name string, size uintptr, used int) {
		r.Row(name, int(size), int64(used), int64(0), int64(size)*int64(used))
	}
	obj("client", unsafe.Sizeof(Session{}), clients)
	obj("client_work", unsafe.Sizeof(sessionWork{}), working)
	obj("server", unsafe.Sizeof(pool.Conn{}), servers)
	obj("pool", unsafe.Sizeof(poolEntry{})+unsafe.Sizeof(pool.Pool{}), len(entries))
	r.Row("go_heap", 1, int64(ms.HeapInuse), int64(ms.HeapIdle-ms.HeapReleased), int64(ms.HeapSys))
	return r.Done("SHOW")
}
