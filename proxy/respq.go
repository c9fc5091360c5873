package proxy

import (
	"sync/atomic"

	"github.com/pgmux/pgmux/proxy/link"
)

// expect is one request on a linked server whose answer the relay must recognise
// (link.Expect), holding proxy's statements (stmtDef), error rewrites (errFix) and
// DEALLOCATE drops (clearDrop).
type expect = link.Expect[stmtDef, errFix, clearDrop]

// book is the link's bookkeeping besides its queue (link.Book): Pending, TxStatus...
// sessionWork embeds it beside its respQueue, q.
type book = link.Book[stmtDef, errFix, clearDrop]

// answered is what the relay reads of the request a server message answers.
type answered = link.Answered[stmtDef]

// respQueue is the link's queue of requests (link.Queue, where the rules that match
// answers to requests live) with what goroutines that do not hold Session.mu read of it.
//
// Owners: ring is guarded by Session.mu: the session goroutine pushes before writing a
// request, the server's reader goroutine pops as the answers arrive. fakes and clears
// are ring's counts, published after every change that may move them: fakes for the
// server's reader to tell without s.mu that no request is fake (the usual case), clears
// for the session goroutine to tell without s.mu that no clearing Query is unanswered;
// wake, made with the first clearing Query under s.mu, gets a token whenever one is
// retired (stmtclear.go). On the server reader's path, Session.answer and
// Session.retireReady call ring's Answer and RetireReady and publish themselves: a
// method here would copy their results once more.
type respQueue struct {
	ring   link.Queue[stmtDef, errFix, clearDrop]
	fakes  atomic.Int32
	clears atomic.Int32
	wake   chan struct{}
}

// publish copies ring's counts to fakes and clears after a change that may have moved
// them, and tells a waiter when a clearing Query was retired.
func (q *respQueue) publish() {
	if n := q.ring.Fakes(); n != q.fakes.Load() {
		q.fakes.Store(n)
	}
	if n := q.ring.Clears(); n != q.clears.Load() {
		fewer := n < q.clears.Load()
		q.clears.Store(n)
		if fewer {
			q.woken()
		}
	}
}

// markClear marks the newest expect, the client's Query, as clearing the client's
// statements: number n of those the session sent.
func (q *respQueue) markClear(n uint32) {
	if q.ring.MarkClear(n) {
		q.wakeChan()
		q.publish()
	}
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

func (q *respQueue) len() int { return q.ring.Len() }

// push queues a copy of e as the newest expect (a pointer: the 128-byte value is copied
// once, into the ring).
func (q *respQueue) push(e *expect) {
	q.ring.Push(e)
	if e.Fake || e.Clear != 0 {
		q.publish()
	}
}

// peek returns the oldest expect; ok is false when the queue is empty.
func (q *respQueue) peek() (expect, bool) { return q.ring.Peek() }

// hideHead makes the oldest expect pgmux's own: its answers are swallowed.
func (q *respQueue) hideHead() { q.ring.HideHead() }

// pop removes the oldest expect.
func (q *respQueue) pop() {
	q.ring.Pop()
	q.publish()
}

// onlySettings reports whether the queue holds requests and all are pgmux's hidden
// settings queries.
func (q *respQueue) onlySettings() bool { return q.ring.OnlySettings() }

func (q *respQueue) reset() {
	q.ring.Reset()
	q.publish()
}

// front returns the oldest expect, to be changed in place; nil when empty. Reader only.
func (q *respQueue) front() *expect { return q.ring.Front() }

// tail returns the newest expect, which the session goroutine pushed; nil when empty.
func (q *respQueue) tail() *expect { return q.ring.Tail() }

// pushBeforeTail queues es in front of the newest expect: requests pgmux writes before
// the client message whose expect was already queued (and not yet written).
func (q *respQueue) pushBeforeTail(es ...expect) {
	q.ring.PushBeforeTail(es...)
	q.publish()
}

// each calls f for every queued expect, oldest first.
func (q *respQueue) each(f func(expect)) { q.ring.Each(f) }

// hiddenAhead reports whether the request the next message belongs to is one of pgmux's
// hidden queries (link.Queue.HiddenAhead).
func (q *respQueue) hiddenAhead(typ byte) bool { return q.ring.HiddenAhead(typ) }
