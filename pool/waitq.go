package pool

// waitQueue is the pool's FIFO of waiters: a ring, so that serving the first waiter and
// queueing a new one move no other and, once the ring has grown to the pool's usual
// queue, allocate nothing (a slice re-sliced from its front, as before, reallocated at
// every append once its front had been consumed). Guarded by the pool's mu.
type waitQueue struct {
	buf  []*waiter // the ring; its length is 0 or a power of two
	head int       // index in buf of the first waiter
	n    int       // how many are queued
}

// Len is the number of waiters.
func (q *waitQueue) Len() int { return q.n }

// at is the i-th waiter from the front.
func (q *waitQueue) at(i int) *waiter { return q.buf[(q.head+i)&(len(q.buf)-1)] }

// set replaces the i-th waiter from the front.
func (q *waitQueue) set(i int, w *waiter) { q.buf[(q.head+i)&(len(q.buf)-1)] = w }

// front is the first waiter; the queue is not empty.
func (q *waitQueue) front() *waiter { return q.buf[q.head] }

// grow doubles the ring (16 at first), keeping the order.
func (q *waitQueue) grow() {
	nb := make([]*waiter, max(16, 2*len(q.buf)))
	for i := range q.n {
		nb[i] = q.at(i)
	}
	q.buf, q.head = nb, 0
}

// push queues w at the back.
func (q *waitQueue) push(w *waiter) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.n++
	q.set(q.n-1, w)
}

// pushFront queues w at the front: a waiter that keeps its place.
func (q *waitQueue) pushFront(w *waiter) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1) & (len(q.buf) - 1)
	q.buf[q.head] = w
	q.n++
}

// pop takes the first waiter; the queue is not empty.
func (q *waitQueue) pop() *waiter {
	w := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return w
}

// removeAt takes out the i-th waiter from the front, keeping the others' order.
func (q *waitQueue) removeAt(i int) *waiter {
	w := q.at(i)
	for j := i; j < q.n-1; j++ {
		q.set(j, q.at(j+1))
	}
	q.set(q.n-1, nil)
	q.n--
	return w
}

// removeFirst takes out the first waiter that match accepts, keeping the others' order,
// and returns it (nil when none does).
func (q *waitQueue) removeFirst(match func(*waiter) bool) *waiter {
	for i := range q.n {
		if match(q.at(i)) {
			return q.removeAt(i)
		}
	}
	return nil
}

// filter keeps, in order, the waiters keep accepts.
func (q *waitQueue) filter(keep func(*waiter) bool) {
	k := 0
	for i := range q.n {
		if w := q.at(i); keep(w) {
			q.set(k, w)
			k++
		}
	}
	for i := k; i < q.n; i++ {
		q.set(i, nil)
	}
	q.n = k
}

// takeAll empties the queue and returns its waiters in order.
func (q *waitQueue) takeAll() []*waiter {
	all := make([]*waiter, q.n)
	for i := range all {
		all[i] = q.at(i)
	}
	*q = waitQueue{}
	return all
}
