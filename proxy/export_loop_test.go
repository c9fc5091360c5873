package proxy

// LoopReadServers counts the server connections of s that the client loop reads
// (pool.Conn.InLoop), for tests of the loop's server side.
func LoopReadServers(s *Server) (inLoop, all int) {
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	for _, e := range s.pools.byKey {
		for _, c := range e.pool.Conns() {
			all++
			if c.InLoop() {
				inLoop++
			}
		}
	}
	return inLoop, all
}

// LoopLogins counts the logins s started on a client loop.
func LoopLogins(s *Server) uint64 { return s.loopLogins.Load() }
