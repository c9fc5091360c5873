package proxy

// AuthCacheLen counts the auth_query answers s keeps.
func AuthCacheLen(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.authCache)
}

// PoolCount counts s's pools (one per database and user), and the database names its
// per-database limits are kept for.
func PoolCount(s *Server) (pools, dbLimits int) {
	s.pools.mu.Lock()
	defer s.pools.mu.Unlock()
	return len(s.pools.byKey), len(s.pools.dbCap)
}
