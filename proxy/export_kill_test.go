package proxy

import "time"

// SetKillWaitForTest sets killWith's bounds (killWait, killMax) and returns a function
// that restores them. Tests that use it must not run in parallel with others.
func SetKillWaitForTest(wait, max time.Duration) (restore func()) {
	w, m := killWait, killMax
	killWait, killMax = wait, max
	return func() { killWait, killMax = w, m }
}
