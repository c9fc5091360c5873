package proxy

import "time"

// StartStatsWindow makes the averages of SHOW STATS and SHOW TOTALS count from now, as if
// a stats period had just ended, so a test need not wait for one.
func StartStatsWindow(s *Server) {
	cur, _ := s.dbTotals()
	now := time.Now()
	a := &s.console.avg
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at, a.prev = now, cur
	a.nextAt, a.next = now, cur
}
