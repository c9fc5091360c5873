package listenmux

import "time"

// Fences: notifications before the answer. On a direct connection, a NOTIFY committed
// before a listening client sends its next request reaches the client before that
// request's ReadyForQuery: the notifier's backend signals the listening backends during
// its commit, before its own client hears of it, and PostgreSQL sends the notifications
// a backend holds before it sends ReadyForQuery (postgres.c: ProcessNotifyInterrupt when
// going idle). Through the shared listener, the answer comes from a pooled server and
// could overtake the notification. So a request from a client that listens asks for a
// fence: a Sync on the database's listener connection, sent after the request arrived.
// Its ReadyForQuery comes after every notification committed before the request, and
// the client's own ReadyForQuery waits for it (Fence.Wait), with the notifications
// handed over before it written first. One fence serves every request that asks while
// it is not yet sent; a request arriving while one is in flight gets the next, since
// the one in flight may predate its NOTIFY.

// FenceWait bounds how long a client's answer waits for a fence; a listener connection
// stuck longer is not waited for by later requests (Fence).
const FenceWait = 500 * time.Millisecond

// syncMsg is the fence's round trip: a Sync alone is answered with ReadyForQuery.
var syncMsg = [...]byte{'S', 0, 0, 0, 4}

// Fence is one round trip on a listener connection; done is closed when its answer has
// been read (so every notification before it was handed to its subscribers) or the
// connection was lost.
//
// Owners: the listener owns it under its mu (made, sent, closed once by fenceDone or a
// failed send); sessions only wait on done (Wait), from the goroutine writing the
// client's ReadyForQuery.
type Fence struct {
	done chan struct{}
	sent time.Time // under Listener.mu
}

func newFence() *Fence { return &Fence{done: make(chan struct{})} }

// Fence returns the fence a request arriving now waits for: one sent from now on. It
// returns nil when there is nothing to wait for: the listener is not connected
// (notifications are being missed anyway), or its fence in flight has been out longer
// than FenceWait.
func (l *Listener) Fence() *Fence {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.conn == nil {
		return nil
	}
	if cur := l.fenceCur; cur != nil {
		if time.Since(cur.sent) > FenceWait {
			return nil
		}
		if l.fenceNext == nil {
			l.fenceNext = newFence()
		}
		return l.fenceNext
	}
	f := newFence()
	if !l.sendFenceLocked(f) {
		return nil
	}
	return f
}

// sendFenceLocked sends f's Sync; l.mu is held and the connection is up. It reports
// whether f went out; one that did not is done.
func (l *Listener) sendFenceLocked(f *Fence) bool {
	l.waiting = append(l.waiting, command{then: func(error) { l.fenceDone(f) }})
	err := l.conn.Wr.Write(syncMsg[:])
	if err == nil {
		err = l.conn.Wr.Flush()
	}
	if err != nil {
		l.waiting = l.waiting[:len(l.waiting)-1]
		l.conn.Discard(err) // Pump sees the break and reconnects (lost)
		close(f.done)
		return false
	}
	f.sent = time.Now()
	l.fenceCur = f
	return true
}

// fenceDone runs under l.mu when f's answer arrived or the connection was lost, and
// sends the fence asked for meanwhile.
func (l *Listener) fenceDone(f *Fence) {
	close(f.done)
	if l.fenceCur == f {
		l.fenceCur = nil
	}
	next := l.fenceNext
	if next == nil {
		return
	}
	l.fenceNext = nil
	if l.conn == nil {
		close(next.done)
		return
	}
	l.sendFenceLocked(next) // a failed send closes next.done
}

// Wait waits until f's answer has been read or the connection was lost, FenceWait at
// most, and reports whether it came back in time.
func (f *Fence) Wait() bool { return waitAtMost(f.done, FenceWait) }

// waitAtMost waits until done is closed or d has passed, and reports whether done was
// closed; no timer when it is already.
func waitAtMost(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
