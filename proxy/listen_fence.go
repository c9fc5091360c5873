package proxy

import (
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/listenmux"
)

// A listening client's request waits for a fence on its database's listener before its
// ReadyForQuery goes out, so that notifications committed before the request come first
// (listenmux/fence.go says why and how).

// askFence runs on the session goroutine for each message of a client that has a
// notification box, before the message is handled: the first message of a request from
// a client subscribed on the shared listener asks for a fence, which the request's
// ReadyForQuery will wait for.
func (s *Session) askFence(b *notifyBox, typ byte) {
	if b.channels.Load() == 0 {
		return
	}
	var first bool
	if first, b.reqOpen = fenceAsked(b.reqOpen, typ); first {
		b.fence.Store(s.srv.listenerFor(s.entry).Fence())
	}
}

// fenceAsked tells, for a client message of type typ, whether it is the first of a
// request (which asks for a fence), and whether a request is open after it (open: an
// extended-protocol request that has not reached its Sync yet).
func fenceAsked(open bool, typ byte) (first, openAfter bool) {
	switch typ {
	case 'Q', 'F', 'S': // a whole request, or its end
		return !open, false
	case 'P', 'B', 'D', 'E', 'C': // extended protocol: the request runs to its Sync
		return !open, true
	}
	return false, open // Flush, COPY data: inside a request
}

// awaitFence holds a listening client's ReadyForQuery until the fence its latest
// request asked for has come back (at most listenmux.FenceWait), then writes the
// notifications handed over before it, SUSPEND or not: they come before an answer that
// goes out anyway, as a server sends its own before its ReadyForQuery; s.wmu is held, at
// a message boundary.
func (s *Session) awaitFence() {
	b := s.notes.Load()
	if b == nil {
		return
	}
	if f := b.fence.Load(); f != nil && !f.Wait() {
		b.fence.CompareAndSwap(f, nil)
		s.log().Debug("listener round trip took too long: answer sent without waiting for it",
			zap.Duration("waited", listenmux.FenceWait))
	}
	if b.pending.Load() {
		s.writeNotes()
	}
}

// restoreListener runs before a listening client's message goes to its server: when the
// shared listener lost its server (a restart), it connects and LISTENs again first
// (listenmux.Listener.Restore). After the server, not before: a request that waited for
// one across the restart would otherwise NOTIFY before the listener is back.
func (s *Session) restoreListener() {
	if b := s.notes.Load(); b != nil && b.channels.Load() > 0 {
		s.srv.listenerFor(s.entry).Restore()
	}
}

// A listening client's own NOTIFY: PostgreSQL sends the client CommandComplete, the
// notification, then ReadyForQuery (the backend delivers what it holds before it goes
// idle). Through the shared listener the notification comes back on another connection,
// after the fence asked at the request's start, which predates the NOTIFY's commit. So
// a request whose text says notify (NOTIFY, pg_notify; a word elsewhere costs a round
// trip, nothing more) asks for a fresh fence when its ReadyForQuery 'I' arrives: the
// transaction has committed by then, its notifications are queued for the listener,
// and they come back before that fence's answer. A named statement prepared in an
// earlier request and executed here is not seen (its text is not in this request).

// noteSelfNotify marks a listening client's request whose Query or Parse text contains
// "notify" (any case), until the next ReadyForQuery 'I'. Session goroutine, before the
// message is handled.
func (s *Session) noteSelfNotify(b *notifyBox, typ byte, n int) error {
	if typ != 'Q' && typ != 'P' || n > maxInspect || b.channels.Load() == 0 || b.selfNotify.Load() {
		return nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return err
	}
	text := wire.Body(m)
	if typ == 'P' {
		f := s.fieldsOf(text, s.rd.Seq())
		if !f.OK() {
			return nil
		}
		text = f.Second(text)
	}
	if containsNotify(text) {
		b.selfNotify.Store(true)
	}
	return nil
}

// containsNotify reports whether b contains "notify" in any case.
func containsNotify(b []byte) bool {
	const w = "notify"
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for ; j < len(w); j++ {
			if b[i+j]|0x20 != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// askSelfFence replaces the fence the client's ReadyForQuery waits for with one asked
// now, when a request since the last ReadyForQuery 'I' may have notified and its
// transaction is over (a NOTIFY in a transaction block is sent at its COMMIT); s.wmu is
// held.
func (s *Session) askSelfFence(status byte) {
	b := s.notes.Load()
	if b == nil || status != 'I' || !b.selfNotify.Swap(false) || b.channels.Load() == 0 {
		return
	}
	if l := s.srv.hub.Get(s.entry.key.db); l != nil {
		b.fence.Store(l.Fence())
	}
}
