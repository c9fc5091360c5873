package proxy

import (
	"time"

	"go.uber.org/zap"
)

// Fences: notifications before the answer. On a direct connection, a NOTIFY committed
// before a listening client sends its next request reaches the client before that
// request's ReadyForQuery: the notifier's backend signals the listening backends during
// its commit, before its own client hears of it, and PostgreSQL sends the notifications
// a backend holds before it sends ReadyForQuery (postgres.c: ProcessNotifyInterrupt when
// going idle). Through the shared listener, the answer comes from a pooled server and
// could overtake the notification. So a request from a client that listens asks for a
// fence: a Sync on the database's listener connection, sent after the request arrived.
// Its ReadyForQuery comes after every notification committed before the request, and
// the client's own ReadyForQuery waits for it, with the notifications read before it
// written first (awaitFence). One fence serves every request that asks while it is not
// yet sent; a request arriving while one is in flight gets the next, since the one in
// flight may predate its NOTIFY. Clients that do not listen pay one atomic load per
// request.

// fenceWait bounds how long a client's answer waits for a fence; a listener connection
// stuck longer is not waited for by later requests (fenceFor).
const fenceWait = 500 * time.Millisecond

// syncMsg is the fence's round trip: a Sync alone is answered with ReadyForQuery.
var syncMsg = [...]byte{'S', 0, 0, 0, 4}

// fence is one round trip on a listener connection; done is closed when its answer has
// been read (so every notification before it was handed to its clients) or the
// connection was lost.
//
// Owners: the listener owns it under its mu (made, sent, closed once by fenceDone or a
// failed send); sessions only wait on done, from the goroutine writing the client's
// ReadyForQuery.
type fence struct {
	done chan struct{}
	sent time.Time // under listener.mu
}

// fenceFor returns the fence a request arriving now waits for: one sent from now on. It
// returns nil when there is nothing to wait for: the listener is not connected
// (notifications are being missed anyway), or its fence in flight has been out longer
// than fenceWait.
func (l *listener) fenceFor() *fence {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.conn == nil {
		return nil
	}
	if cur := l.fenceCur; cur != nil {
		if time.Since(cur.sent) > fenceWait {
			return nil
		}
		if l.fenceNext == nil {
			l.fenceNext = &fence{done: make(chan struct{})}
		}
		return l.fenceNext
	}
	f := &fence{done: make(chan struct{})}
	if !l.sendFenceLocked(f) {
		return nil
	}
	return f
}

// sendFenceLocked sends f's Sync; l.mu is held and the connection is up. It reports
// whether f went out; one that did not is done.
func (l *listener) sendFenceLocked(f *fence) bool {
	l.waiting = append(l.waiting, listenCmd{then: func(error) { l.fenceDone(f) }})
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
func (l *listener) fenceDone(f *fence) {
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

// askFence runs on the session goroutine for each message of a client that has a
// notification box, before the message is handled: the first message of a request from
// a client subscribed on the shared listener asks for a fence, which the request's
// ReadyForQuery will wait for.
func (s *Session) askFence(b *notifyBox, typ byte) {
	if b.channels.Load() == 0 {
		return
	}
	first := !s.reqOpen
	switch typ {
	case 'Q', 'F', 'S': // a whole request, or its end
		s.reqOpen = false
	case 'P', 'B', 'D', 'E', 'C': // extended protocol: the request runs to its Sync
		s.reqOpen = true
	default: // Flush, COPY data: inside a request
		return
	}
	if first {
		b.fence.Store(s.srv.hub.forDB(s.entry).fenceFor())
	}
}

// awaitFence holds a listening client's ReadyForQuery until the fence its latest
// request asked for has come back (at most fenceWait), then writes the notifications
// read before it; s.wmu is held, at a message boundary.
func (s *Session) awaitFence() {
	b := s.notes.Load()
	if b == nil {
		return
	}
	f := b.fence.Load()
	if f == nil {
		return
	}
	select {
	case <-f.done:
	default:
		t := time.NewTimer(fenceWait)
		select {
		case <-f.done:
		case <-t.C:
			b.fence.CompareAndSwap(f, nil)
			s.log().Debug("listener round trip took too long: answer sent without waiting for it",
				zap.Duration("waited", fenceWait))
		}
		t.Stop()
	}
	s.drainNotify()
}
