package link

// The response queue's decisions, without I/O: which request a server message answers,
// whether the client sees it, and which requests it completes. The relay
// (proxy/relay.go Session.answer, retireReady, skipToSync) applies what these return to
// the server's state; match_test.go drives them with message sequences alone.

// ErrorSkipsToSync reports whether an ErrorResponse answering a request of that kind
// makes the server skip to the next Sync: it does for an extended-protocol message; a
// Query's or a FunctionCall's error ends with that request's own ReadyForQuery.
func ErrorSkipsToSync(kind byte) bool {
	return kind != 'Q' && kind != 'S' && kind != 'F'
}
