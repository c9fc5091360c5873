package proxy

import (
	"time"

	"github.com/pgmux/pgmux/pool"
)

// A request may hold more events that the server may skip, each with another statement
// before it, than unnamedRare.saved keeps (maxSaved): a pipeline of Parses of the unnamed
// statement, each of another text, with no Sync between. The statement before an event
// past the bound was not kept, and a skip back to it left the client none. Instead, at
// the bound pgmux asks the server for its answers so far (a Flush, which PostgreSQL
// answers with nothing of its own: it only sends what it has, as it would once its output
// buffer filled) and waits for them: once every event sent is answered, none of them can
// be skipped any more, and what was kept for them is applied and dropped; once the server
// reported an error, it skips every event after it, and only the statement before the
// first of those is kept. Only such a pipeline pays; a Parse pays a nil test.

// roomUnnamed makes room to save the statement before the client's Parse or Close of the
// unnamed statement, or its simple Query, about to be sent on c (or answered by pgmux),
// when the saved states are at their bound.
// The client loop leaves such a message to the session goroutine (loopable: unnamedFull).
func (s *Session) roomUnnamed(c *pool.Conn) {
	u := &s.unnamed
	if !u.full() || uint32(s.rd.Seq()) == u.syncAt+1 {
		return // room, or the event starts its request: nothing saved is needed
	}
	if c.Wr.Write(flushMessage) != nil || c.Wr.Flush() != nil {
		return // the link is failing: it ends, and with it what was saved
	}
	// Done when every event sent is answered, or the server reported an error and skips
	// the rest of the request: then the events not answered are skipped, with every one
	// the client sends until its Sync, and only the statement before the first of them
	// is still needed.
	var skipping bool
	done := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, left := s.unnamedOut()
		skipping = s.ErrSkip
		return !left || skipping
	}
	// The reader wakes nobody for these answers (there is no ReadyForQuery): look again
	// soon, then less often, within the bound of a wait for the server's answers.
	pause := 50 * time.Microsecond
	for deadline := time.Now().Add(maxClearWait); !done(); pause = min(2*pause, clearWait) {
		if time.Now().After(deadline) || s.closed.Load() || s.linkedServer() != c {
			return // saved as before: a skip back past the bound leaves none
		}
		time.Sleep(pause)
	}
	if skipping {
		s.mu.Lock()
		k := s.firstSkipped()
		s.mu.Unlock()
		u.keepOnly(k)
		return
	}
	u.pend = false
	u.settle()
	u.forgetSaved()
}

// firstSkipped is the number of the first of the client's events the server skips after
// the error of the current request: the start of the run reported skipped, else the
// first event still queued (sent after the error); 0 when there is none yet (the next
// event is the first). s.mu is held.
func (s *Session) firstSkipped() uint16 {
	if sk := s.unnamed.skipped.Load(); sk != 0 {
		return uint16(sk >> 16)
	}
	var k uint16
	s.q.each(func(e expect) {
		if k == 0 && unnamedEvent(&e) {
			k = uint16(e.Seq)
		}
	})
	return k
}

// keepOnly keeps, of the saved states, only the one before event k (none for 0): a skip
// can go back no further, nor stop short of it.
func (u *unnamedStmt) keepOnly(k uint16) {
	saved := u.x.saved
	for i := range saved {
		if k != 0 && saved[i].from <= k && k <= saved[i].to {
			saved[0], saved[i] = saved[i], saved[0] // swapped: each keeps its body buffer
			u.x.saved = saved[:1]
			return
		}
	}
	u.x.saved = saved[:0]
}

// flushMessage is a Flush.
var flushMessage = []byte{'H', 0, 0, 0, 4}

// full reports whether the saved states are at their bound.
func (u *unnamedStmt) full() bool { return u.x != nil && len(u.x.saved) >= maxSaved }
