package proxy

import (
	"sync/atomic"

	"github.com/pgmux/pgmux/proxy/link"
)

// expect is one request on a linked server whose answer the relay must recognise
// (link.Expect), holding proxy's statements (stmtDef), error rewrites (errFix) and
// DEALLOCATE drops (clearDrop).
type expect = link.Expect[stmtDef, errFix, clearDrop]

// respQueue is a growable ring of expects. It is guarded by Session.mu: the session
// goroutine pushes before writing a request, the server's reader goroutine pops as the
// answers arrive.
type respQueue struct {
	buf        []expect
	head, size int
	// fakes counts the fake entries queued, so the server's reader can tell without
	// s.mu that there is none (the usual case).
	fakes atomic.Int32
	// clears counts the clearing Queries queued (expect.clear), so the session goroutine
	// can tell without s.mu that none is unanswered; wake, made with the first, gets a
	// token whenever one is retired (stmtclear.go).
	clears atomic.Int32
	wake   chan struct{}
}

// markClear marks the newest expect, the client's Query, as clearing the client's
// statements: number n of those the session sent.
func (q *respQueue) markClear(n uint32) {
	e := q.tail()
	if e == nil || e.Clear != 0 {
		return
	}
	q.wakeChan()
	e.Clear = n
	q.clears.Add(1)
}

// wakeChan returns wake, made on first use. Under Session.mu.
func (q *respQueue) wakeChan() chan struct{} {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	return q.wake
}

// woken tells a session goroutine waiting for a clearing Query's answer to look again.
func (q *respQueue) woken() {
	if q.wake != nil {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *respQueue) len() int { return q.size }

func (q *respQueue) push(e expect) {
	if q.size == len(q.buf) {
		n := 2 * len(q.buf)
		if n == 0 {
			n = 8 // a Query needs one, an extended-protocol request about five
		}
		nb := make([]expect, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = e
	q.size++
	if e.Fake {
		q.fakes.Add(1)
	}
}

// peek returns the oldest expect; ok is false when the queue is empty.
func (q *respQueue) peek() (expect, bool) {
	if q.size == 0 {
		return expect{}, false
	}
	return q.buf[q.head], true
}

// hideHead makes the oldest expect pgmux's own: its answers are swallowed.
func (q *respQueue) hideHead() {
	if q.size > 0 {
		q.buf[q.head].Hide = true
	}
}

func (q *respQueue) pop() (expect, bool) {
	if q.size == 0 {
		return expect{}, false
	}
	e := q.buf[q.head]
	q.drop()
	return e, true
}

// drop removes the oldest expect without copying it out; the queue is not empty.
func (q *respQueue) drop() {
	e := &q.buf[q.head]
	if e.Fake {
		q.fakes.Add(-1)
	}
	if e.Clear != 0 {
		q.clears.Add(-1)
		q.woken()
	}
	*e = expect{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
}

// onlySettings reports whether the queue holds requests and all are pgmux's hidden
// settings queries.
func (q *respQueue) onlySettings() bool {
	for i := 0; i < q.size; i++ {
		if e := &q.buf[(q.head+i)%len(q.buf)]; !e.Hide || e.Setting == 0 {
			return false
		}
	}
	return q.size > 0
}

func (q *respQueue) reset() {
	for q.size > 0 {
		q.pop()
	}
	q.head = 0
}

// front returns the oldest expect, to be changed in place; nil when empty. Reader only.
func (q *respQueue) front() *expect {
	if q.size == 0 {
		return nil
	}
	return &q.buf[q.head]
}

// tail returns the newest expect, which the session goroutine pushed; nil when empty.
func (q *respQueue) tail() *expect {
	if q.size == 0 {
		return nil
	}
	return &q.buf[(q.head+q.size-1)%len(q.buf)]
}

// pushBeforeTail queues es in front of the newest expect: requests pgmux writes before
// the client message whose expect was already queued (and not yet written).
func (q *respQueue) pushBeforeTail(es ...expect) {
	last, ok := expect{}, q.size > 0
	if ok {
		last = *q.tail()
		q.size--
	}
	for _, e := range es {
		q.push(e)
	}
	if ok {
		q.push(last)
	}
}

// each calls f for every queued expect, oldest first.
func (q *respQueue) each(f func(expect)) {
	for i := 0; i < q.size; i++ {
		f(q.buf[(q.head+i)%len(q.buf)])
	}
}

// hiddenAhead reports whether the request the next message belongs to is one of pgmux's
// hidden queries: for ReadyForQuery the first Query, Sync or FunctionCall queued, for
// anything else the head when it is a hidden Query.
func (q *respQueue) hiddenAhead(typ byte) bool {
	for i := 0; i < q.size; i++ {
		e := &q.buf[(q.head+i)%len(q.buf)]
		if typ != 'Z' {
			return e.Kind == 'Q' && e.Hide
		}
		switch e.Kind {
		case 'S', 'Q', 'F':
			return e.Hide
		}
	}
	return false
}
