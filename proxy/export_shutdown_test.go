package proxy

// HoldSessionEndForTest makes every session that ends wait, before it is unregistered,
// until release is called: a session that does not end on its own.
func HoldSessionEndForTest() (release func()) {
	held := make(chan struct{})
	f := func(*Session) { <-held }
	testHookSessionEnd.Store(&f)
	return func() {
		testHookSessionEnd.Store(nil)
		close(held)
	}
}
