package proxy

import (
	"runtime"
	"unsafe"

	"github.com/pgmux/pgmux/pool"
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
		servers += e.pool.Stats().Total
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := newResult(nil, textCol("name"), int4Col("size"), int8Col("used"), int8Col("free"), int8Col("memtotal"))
	obj := func(name string, size uintptr, used int) {
		r.row(name, int(size), int64(used), int64(0), int64(size)*int64(used))
	}
	obj("client", unsafe.Sizeof(Session{}), clients)
	obj("client_work", unsafe.Sizeof(sessionWork{}), working)
	obj("server", unsafe.Sizeof(pool.Conn{}), servers)
	obj("pool", unsafe.Sizeof(poolEntry{})+unsafe.Sizeof(pool.Pool{}), len(entries))
	r.row("go_heap", 1, int64(ms.HeapInuse), int64(ms.HeapIdle-ms.HeapReleased), int64(ms.HeapSys))
	return r.done("SHOW")
}
