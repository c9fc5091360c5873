package proxy

import "sync"

// HoldConsoleForTest takes the console's lock, as a console command holds it while it
// works, until the function it returns is called.
func HoldConsoleForTest(s *Server) (release func()) {
	s.console.mu.Lock()
	return sync.OnceFunc(s.console.mu.Unlock)
}
