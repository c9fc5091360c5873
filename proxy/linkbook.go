package proxy

// linkBook is the protocol bookkeeping of a client's link to its server, without I/O
// and without a lock of its own: the requests awaiting answers (the response queue),
// how many of the client's requests a ReadyForQuery still owes, whether an extended-
// protocol request is open, whether the server skips to the next Sync after an error,
// and the transaction status it last reported. The relay tells it what it sends
// (sentClient) and what the server answered (readyAnswered, errorSkips); the rules
// that decide from it are link.Queue.Answer (which request a message answers),
// link.ErrorRule (what an error does) and link.End (whether the link ends).
// respmatch_test.go's FuzzRespQueue drives it with message sequences alone.
//
// It is embedded in sessionWork, so s.pending is s.sessionWork.linkBook.pending; its
// fields are guarded by Session.mu, as the Session's comment says of the link state.
type linkBook struct {
	q       respQueue // requests on the linked server awaiting answers
	pending int       // Query, Sync and FunctionCall sent and not yet answered by ReadyForQuery
	// reqs counts the client's requests (Query, Sync, FunctionCall) sent; a statement
	// prepared on the server in an earlier request whose answer has not come is
	// prepared again rather than trusted (stmtcache.go lookup).
	reqs     uint64
	txStatus byte // the transaction status of the last ReadyForQuery: 'I', 'T' or 'E'
	unsynced bool // extended-protocol messages sent since the last Sync
	errSkip  bool // the server reported an error and skips messages until the next Sync
	dropErr  bool // the client's next error is a consequence of one it was shown (sqlprep.go)
}

// sentClient records a client message sent to the server as it is: the answers it is
// owed, and whether it leaves an extended-protocol request open. queueExtended: Parse,
// Bind, Describe and Close are queued as they are (prepPass; a link that rewrites them
// queues its own expectations). It reports whether the message starts a request while
// none is pending (where the query timer starts).
func (b *linkBook) sentClient(typ byte, queueExtended bool) (starts bool) {
	starts = b.pending == 0 && (typ == 'Q' || typ == 'F' || typ == 'S')
	switch typ {
	case 'Q', 'F':
		b.pending++
		b.reqs++
		b.q.push(expect{Kind: typ})
	case 'S':
		b.pending++
		b.reqs++
		b.unsynced = false
		b.errSkip = false
		b.q.push(expect{Kind: 'S'})
	case 'E':
		b.unsynced = true
		b.q.push(expect{Kind: 'E'})
	case 'P', 'B', 'D', 'C':
		b.unsynced = true
		if queueExtended {
			b.q.push(expect{Kind: typ})
		}
	case 'H':
		b.unsynced = true
	}
	return starts
}

// quiet reports whether the server owes the link nothing: no answer pending, no
// extended-protocol request open, no request of pgmux's queued.
func (b *linkBook) quiet() bool { return b.pending == 0 && !b.unsynced && b.q.len() == 0 }

// readyAnswered records the ReadyForQuery that answered the client's own request.
func (b *linkBook) readyAnswered(status byte) {
	if b.pending > 0 {
		b.pending--
	}
	b.txStatus = status
}

// skippedRequest records a request the server skipped after an error, which no
// ReadyForQuery will answer.
func (b *linkBook) skippedRequest(e expect) {
	if (e.Kind == 'Q' || e.Kind == 'F') && !e.Hide && b.pending > 0 {
		b.pending--
	}
}

// errorSkips retires the requests the server skips after an error, up to the next Sync
// (each is told of every one, the first marked), and records the skip: with no Sync
// queued yet, the server ignores what comes until one is sent.
func (b *linkBook) errorSkips(each func(e expect, first bool)) {
	synced := b.q.skipToSync(func(e expect, first bool) {
		each(e, first)
		b.skippedRequest(e)
	})
	b.errSkip = !synced
}

// linkedFresh starts the bookkeeping of a new link: nothing was sent on it yet.
func (b *linkBook) linkedFresh() { b.pending, b.unsynced, b.errSkip = 0, false, false }
