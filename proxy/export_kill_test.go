package proxy

import "time"

// SetKillWaitForTest sets killWith's bounds (killWait, killMax) and returns a function
// that restores them.
func SetKillWaitForTest(wait, max time.Duration) (restore func()) {
	w, m := killWaitNs.Load(), killMaxNs.Load()
	killWaitNs.Store(int64(wait))
	killMaxNs.Store(int64(max))
	return func() { killWaitNs.Store(w); killMaxNs.Store(m) }
}

// SentToClients is how many bytes s has sent the logged-in clients of db since their
// login: a test sees from it that relays have stopped, blocked on clients that do not read.
func SentToClients(s *Server, db string) uint64 {
	var n uint64
	for _, sess := range s.Sessions() {
		if sess.dbName == db {
			n += sess.sentOut()
		}
	}
	return n
}
