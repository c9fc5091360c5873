package proxy

// LoopReadServers counts the server connections of s that the client loop reads
// (pool.Conn.InLoop), all of them, and their reader goroutines, for tests of the loop's
// server side.
func LoopReadServers(s *Server) (inLoop, all, readers int) {
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	for _, e := range s.pools.byKey {
		readers += e.pool.Readers()
		for _, c := range e.pool.Conns() {
			all++
			if c.InLoop() {
				inLoop++
			}
		}
	}
	return inLoop, all, readers
}

// RuntimeConns counts the net.Conns in the runtime's poller that s made for clients after
// their login (on a client loop, or from their park).
func RuntimeConns(s *Server) uint64 { return s.runtimeConns.Load() }

// LoopLogins counts the logins s started on a client loop.
func LoopLogins(s *Server) uint64 { return s.loopLogins.Load() }

// ClientConns counts s's logged-in clients by what their connection is now: the bare
// socket they logged in with on a loop (raw), parked without a net.Conn (detached), or a
// net.Conn (conns).
func ClientConns(s *Server) (raw, detached, conns int) {
	for _, sess := range s.Sessions() {
		sess.ncMu.Lock()
		switch {
		case sess.rawClient():
			raw++
		case sess.rawFD >= 0:
			detached++
		default:
			conns++
		}
		sess.ncMu.Unlock()
	}
	return raw, detached, conns
}

// Loops is how many client loops s runs.
func Loops(s *Server) int { return len(s.loops) }

// LiveClients counts the client connections s serves: logging in or logged in.
func LiveClients(s *Server) int64 { return s.nclients.Load() }

// GoroutineResumes counts the parked sessions resumed on a goroutine of their own so far.
func GoroutineResumes() uint64 { return resumes.Load() }

// GoroutineEnds counts the sessions a loop ended on a goroutine of their own so far.
func GoroutineEnds() uint64 { return goroutineEnds.Load() }

// SetDispatchHook has f told of each client message dispatch decides about (nil: none);
// set it before clients connect and reset it at the test's end.
func SetDispatchHook(f func(typ byte)) { testHookDispatch = f }

// SetSplitHook has f told of each Parse or Bind a loop's client had split for it
// (fieldsOf; nil: none); set it before clients connect, reset it at the test's end.
func SetSplitHook(f func()) { testHookSplit = f }

// SetOnLinkHook has f told of each client message forwarded without dispatch's decisions
// (forwardOnLink; nil: none); set it before clients connect, reset it at the test's end.
func SetOnLinkHook(f func(typ byte)) { testHookOnLink = f }

// QueueBuffers counts the logged-in clients whose response queue holds a buffer, and
// the server connections that keep one to lend to their next client (serverState.ring).
func QueueBuffers(s *Server) (clients, servers int) {
	for _, sess := range s.Sessions() {
		sess.mu.Lock()
		if sess.sessionWork != nil && sess.q.ring.Cap() > 0 {
			clients++
		}
		sess.mu.Unlock()
	}
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	for _, e := range s.pools.byKey {
		for _, c := range e.pool.Conns() {
			if x := linkOf(c); x != nil && x.ring != nil {
				servers++
			}
		}
	}
	return clients, servers
}

// PoolWaiters counts the requests queued in the pools of database db, as the pools count
// them (no look at the waiting clients' sockets, as SHOW POOLS takes).
func PoolWaiters(s *Server, db string) int {
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	n := 0
	for k, e := range s.pools.byKey {
		if k.db == db {
			n += e.pool.Stats().Waiting
		}
	}
	return n
}

// PolledWaiters counts the waiting clients' sockets the sweeps and snapshots have polled
// for their peer's end (dropGoneWaiters).
func PolledWaiters() uint64 { return polledWaiters.Load() }
