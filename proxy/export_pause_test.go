package proxy

// PausedAllForTest reports whether the console's global PAUSE is set (SHOW STATE's
// paused, read without a console connection), for tests that must act right after it.
func PausedAllForTest(s *Server) bool {
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	return s.console.pausedAll
}

// PoolsPausedForTest counts the pools of db (of every database when db is "") held now
// (pool.Stats.Paused).
func PoolsPausedForTest(s *Server, db string) int {
	n := 0
	for _, e := range s.pools.all() {
		if (db == "" || e.key.db == db) && e.pool.Stats().Paused {
			n++
		}
	}
	return n
}

// PausedDBForTest reports whether PAUSE db holds db (not counting a global PAUSE).
func PausedDBForTest(s *Server, db string) bool {
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	return s.console.paused[db]
}

// LoggingInForTest counts the clients logging in now (SUSPEND waits for them).
func LoggingInForTest(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logins)
}

// LoginsInFlight counts the clients SUSPEND sees logging in (Server.logins).
func LoginsInFlight(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logins)
}

// SetTestHookHold sets (nil: clears) a function a server's reader runs as SUSPEND begins
// to hold a message of its server (over false) and once the hold is over (true), before
// the reader goes on with the message.
func SetTestHookHold(f func(over bool)) {
	if f == nil {
		testHookHold.Store(nil)
		return
	}
	testHookHold.Store(&f)
}
