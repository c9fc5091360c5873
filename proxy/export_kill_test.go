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
