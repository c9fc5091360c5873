package pool

// SetTestHookIdleFailed sets (nil: clears) a function run when the reader of a connection
// that is not leased has found it broken, before it marks the connection gone.
func SetTestHookIdleFailed(f func(*Conn)) {
	if f == nil {
		testHookIdleFailed.Store(nil)
		return
	}
	testHookIdleFailed.Store(&f)
}
