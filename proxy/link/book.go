package link

// Book is the protocol bookkeeping of a client's link to its server besides its queue of
// requests: how many of the client's requests a ReadyForQuery still owes, whether an
// extended-protocol request is open, whether the server skips to the next Sync after an
// error, and the transaction status it last reported. The caller tells it what it sends
// (SentClient) and what the server answered (ReadyAnswered, ErrorSkips); the rules that
// decide from it are Queue.Answer (which request a message answers), ErrorRule (what an
// error does) and End (whether the link ends). book_test.go's FuzzRespQueue drives it
// with message sequences alone.
//
// The queue is not in it: its owner keeps it beside the Book (package proxy wraps it
// with the counts it publishes to other goroutines), and the methods that read or
// change it take it. S, F and D are the queue's (Expect); a Book holds none of them.
//
// Owners: it has no lock of its own; whoever holds it guards it, as its queue (in
// package proxy it is embedded in sessionWork, so s.Pending is the Book's Pending, and
// guarded by Session.mu, as the Session's comment says of the link state).
type Book[S, F, D any] struct {
	Pending int // Query, Sync and FunctionCall sent and not yet answered by ReadyForQuery
	// Reqs counts the client's requests (Query, Sync, FunctionCall) sent; a statement
	// prepared on the server in an earlier request whose answer has not come is
	// prepared again rather than trusted (proxy/stmtcache.go lookup).
	Reqs     uint64
	TxStatus byte // the transaction status of the last ReadyForQuery: 'I', 'T' or 'E'
	Unsynced bool // extended-protocol messages sent since the last Sync
	ErrSkip  bool // the server reported an error and skips messages until the next Sync
	DropErr  bool // the client's next error is a consequence of one it was shown (proxy/sqlprep.go)
}

// SentClient records a client message sent to the server as it is: the answers it is
// owed, queued on q, and whether it leaves an extended-protocol request open.
// queueExtended: Parse, Bind, Describe and Close are queued as they are (proxy's
// prepPass; a link that rewrites them queues its own expectations). It reports whether
// the message starts a request while none is pending (where the query timer starts).
//
// What it queues is neither Fake nor clearing: q's counts (Fakes, Clears) do not move.
func (b *Book[S, F, D]) SentClient(q *Queue[S, F, D], typ byte, queueExtended bool) (starts bool) {
	starts = b.Pending == 0 && (typ == 'Q' || typ == 'F' || typ == 'S')
	switch typ {
	case 'Q', 'F':
		if b.ErrSkip {
			// Sent after the server's error was read, before the client's Sync: the server
			// skips it and answers nothing, not even a ReadyForQuery, which would
			// otherwise be taken as this request's and leave the Sync's unanswered. It
			// is queued all the same, for what the client's messages mark on it.
			b.Reqs++
			q.Push(&Expect[S, F, D]{Kind: typ, Skipped: true})
			return false
		}
		b.Pending++
		b.Reqs++
		q.Push(&Expect[S, F, D]{Kind: typ})
	case 'S':
		if b.ErrSkip {
			// What was queued since the error, pgmux's hidden queries too, goes unanswered.
			b.Pending = max(b.Pending-q.MarkSkipped(), 0)
		}
		b.Pending++
		b.Reqs++
		b.Unsynced = false
		b.ErrSkip = false
		q.Push(&Expect[S, F, D]{Kind: 'S'})
	case 'E':
		b.Unsynced = true
		q.Push(&Expect[S, F, D]{Kind: 'E'})
	case 'P', 'B', 'D', 'C':
		b.Unsynced = true
		if queueExtended {
			q.Push(&Expect[S, F, D]{Kind: typ})
		}
	case 'H':
		b.Unsynced = true
	}
	return starts
}

// Quiet reports whether the server owes the link nothing: no answer pending, no
// extended-protocol request open, no request of pgmux's queued on q.
func (b *Book[S, F, D]) Quiet(q *Queue[S, F, D]) bool {
	return b.Pending == 0 && !b.Unsynced && q.Len() == 0
}

// ReadyAnswered records the ReadyForQuery that answered the client's own request.
func (b *Book[S, F, D]) ReadyAnswered(status byte) {
	if b.Pending > 0 {
		b.Pending--
	}
	b.TxStatus = status
}

// skippedRequest records a request the server skipped after an error, which no
// ReadyForQuery will answer.
func (b *Book[S, F, D]) skippedRequest(e *Expect[S, F, D]) {
	if (e.Kind == 'Q' || e.Kind == 'F') && !e.Hide && !e.Skipped && b.Pending > 0 {
		b.Pending--
	}
}

// ErrorSkips retires from q the requests the server skips after an error, up to the next
// Sync (each is told of every one, the first marked: Queue.SkipToSync), and records the
// skip: with no Sync queued yet, the server ignores what comes until one is sent. The
// caller publishes q's counts after it, as after any Pop.
func (b *Book[S, F, D]) ErrorSkips(q *Queue[S, F, D], each func(e Expect[S, F, D], first bool)) {
	synced := q.SkipToSync(func(e Expect[S, F, D], first bool) {
		each(e, first)
		b.skippedRequest(&e)
	})
	b.ErrSkip = !synced
}

// LinkedFresh starts the bookkeeping of a new link: nothing was sent on it yet.
func (b *Book[S, F, D]) LinkedFresh() { b.Pending, b.Unsynced, b.ErrSkip = 0, false, false }
