package link

// Queue is a growable ring of Expects: the requests on a linked server awaiting answers,
// oldest first. It counts the Fake and the clearing (Clear set) requests it holds, so its
// owner can publish those counts to goroutines that do not hold its lock.
//
// Owners: it has no lock of its own; whoever holds it guards it (in package proxy,
// Session.mu: the session goroutine pushes before writing a request, the server's reader
// pops as the answers arrive).
type Queue[S, F, D any] struct {
	buf []Expect[S, F, D]
	// int32s: a Queue is 40 bytes, which keeps the caller's state within its size class
	// (proxy's sessionWork, TestSessionSizeBounded).
	head, size    int32
	fakes, clears int32 // the Fake requests queued, and those with Clear set
}

// at returns the i-th request from the oldest. The buffer's length is a power of two
// (Push doubles it from 8, Swap takes no other), so the ring wraps with a mask, not a
// division.
func (q *Queue[S, F, D]) at(i int32) *Expect[S, F, D] {
	return &q.buf[int(q.head+i)&(len(q.buf)-1)]
}

// Len returns the number of requests queued.
func (q *Queue[S, F, D]) Len() int { return int(q.size) }

// Cap returns the number of requests the queue's buffer holds before it grows (0: it
// has none).
func (q *Queue[S, F, D]) Cap() int { return len(q.buf) }

// Fakes returns the number of Fake requests queued.
func (q *Queue[S, F, D]) Fakes() int32 { return q.fakes }

// Clears returns the number of clearing requests (Clear set) queued.
func (q *Queue[S, F, D]) Clears() int32 { return q.clears }

// Push queues e as the newest request. e is copied in (a pointer spares the caller a copy
// of the 128-byte value).
func (q *Queue[S, F, D]) Push(e *Expect[S, F, D]) {
	if int(q.size) == len(q.buf) {
		n := 2 * len(q.buf)
		if n == 0 {
			n = 8 // a Query needs one, an extended-protocol request about five
		}
		nb := make([]Expect[S, F, D], n)
		for i := int32(0); i < q.size; i++ {
			nb[i] = *q.at(i)
		}
		q.buf, q.head = nb, 0
	}
	*q.at(q.size) = *e
	q.size++
	q.count(e, 1)
}

// count adds d to the counts e is in.
func (q *Queue[S, F, D]) count(e *Expect[S, F, D], d int32) {
	if e.Fake {
		q.fakes += d
	}
	if e.Clear != 0 {
		q.clears += d
	}
}

// Peek returns the oldest request; ok is false when the queue is empty.
func (q *Queue[S, F, D]) Peek() (Expect[S, F, D], bool) {
	if q.size == 0 {
		return Expect[S, F, D]{}, false
	}
	return q.buf[q.head], true
}

// HideHead makes the oldest request pgmux's own: its answers are swallowed.
func (q *Queue[S, F, D]) HideHead() {
	if q.size > 0 {
		q.buf[q.head].Hide = true
	}
}

// Pop removes the oldest request and returns it; ok is false when the queue is empty.
func (q *Queue[S, F, D]) Pop() (Expect[S, F, D], bool) {
	if q.size == 0 {
		return Expect[S, F, D]{}, false
	}
	e := q.buf[q.head]
	q.drop()
	return e, true
}

// drop removes the oldest request without copying it out; the queue is not empty.
func (q *Queue[S, F, D]) drop() {
	e := &q.buf[q.head]
	q.count(e, -1)
	*e = Expect[S, F, D]{}
	q.head = int32(int(q.head+1) & (len(q.buf) - 1))
	q.size--
}

// OnlySettings reports whether the queue holds requests and all are pgmux's hidden
// settings queries.
func (q *Queue[S, F, D]) OnlySettings() bool {
	for i := int32(0); i < q.size; i++ {
		if e := q.at(i); !e.Hide || e.Setting == 0 {
			return false
		}
	}
	return q.size > 0
}

// Swap trades the queue's buffer for spare (nil: none, the next Push makes one) and
// returns the one it had. An empty queue only: one holding requests keeps its buffer and
// spare is returned. Its owner lends a buffer between queues this way (proxy: a server's
// linked client uses the server's, which many clients' requests keep in cache).
func (q *Queue[S, F, D]) Swap(spare []Expect[S, F, D]) []Expect[S, F, D] {
	if q.size != 0 {
		return spare
	}
	if n := len(spare); n&(n-1) != 0 {
		spare = nil // not a ring this queue can wrap with a mask (at): the next Push makes one
	}
	old := q.buf
	q.buf, q.head = spare, 0
	return old
}

// Reset empties the queue.
func (q *Queue[S, F, D]) Reset() {
	for q.size > 0 {
		q.drop()
	}
	q.head = 0
}

// Front returns the oldest request, to be changed in place; nil when empty. Its Fake
// and Clear are not to be changed there (they are counted).
func (q *Queue[S, F, D]) Front() *Expect[S, F, D] {
	if q.size == 0 {
		return nil
	}
	return &q.buf[q.head]
}

// Tail returns the newest request, to be changed in place as Front's; nil when empty.
func (q *Queue[S, F, D]) Tail() *Expect[S, F, D] {
	if q.size == 0 {
		return nil
	}
	return q.at(q.size - 1)
}

// MarkClear marks the newest request, the client's Query or Execute, as clearing the
// client's statements: number n of those the session sent. It reports whether it did
// (not when the queue is empty or the request is marked already).
func (q *Queue[S, F, D]) MarkClear(n uint32) bool {
	e := q.Tail()
	if e == nil || e.Clear != 0 {
		return false
	}
	e.Clear = n
	q.clears++
	return true
}

// PushBeforeTail queues es in front of the newest request: requests pgmux writes before
// the client message whose request was already queued (and not yet written).
func (q *Queue[S, F, D]) PushBeforeTail(es ...Expect[S, F, D]) {
	last, ok := Expect[S, F, D]{}, q.size > 0
	if ok {
		last = *q.Tail()
		q.count(&last, -1)
		q.size--
	}
	for i := range es {
		q.Push(&es[i])
	}
	if ok {
		q.Push(&last)
	}
}

// Each calls f for every queued request, oldest first.
func (q *Queue[S, F, D]) Each(f func(Expect[S, F, D])) {
	for i := int32(0); i < q.size; i++ {
		f(*q.at(i))
	}
}

// HiddenAhead reports whether the request the next server message of type typ belongs to
// is one of pgmux's hidden queries: for ReadyForQuery the first Query, Sync or
// FunctionCall queued, for anything else the head when it is a hidden Query.
func (q *Queue[S, F, D]) HiddenAhead(typ byte) bool {
	for i := int32(0); i < q.size; i++ {
		e := q.at(i)
		if typ != 'Z' {
			return e.Kind == 'Q' && e.Hide && !e.Skipped
		}
		switch e.Kind {
		case 'S', 'Q', 'F':
			if !e.Skipped {
				return e.Hide
			}
		}
	}
	return false
}

// MarkSkipped marks every Query and FunctionCall queued as Skipped: sent after the
// server's error was read (nothing before it is still queued then), they are skipped
// with it up to the Sync about to be sent. It returns how many of them are the client's
// and were not marked before (each counted in Book.Pending).
func (q *Queue[S, F, D]) MarkSkipped() (client int) {
	for i := int32(0); i < q.size; i++ {
		if e := q.at(i); (e.Kind == 'Q' || e.Kind == 'F') && !e.Skipped {
			e.Skipped = true
			if !e.Hide {
				client++
			}
		}
	}
	return client
}
