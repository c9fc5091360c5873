package proxy

import (
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// A client that listens and does not read. PgBouncer holds pkt_buf of a socket and then
// stops reading the server, which there is the client's own: what comes next waits in
// PostgreSQL. pgmux's listener connection is shared, so stopping it for one client would
// stall every listener of the database (pgmux does that only during SUSPEND, for all of
// them at once: Backlog), and a queue without a bound grows with everything the channel
// carries. So:
//
//   - the listener's reader never waits on a client: it writes a notification only when
//     the client's writer is free, and only what the socket takes at once (notesNow); the
//     rest goes to a goroutine of the client's own (notesLater), which waits for the
//     socket at most notesWait and ends the client past it, as writeNotes does;
//   - meanwhile, and while a relay holds the writer, notifications queue: at most notesMax
//     bytes a client, beyond what its socket buffers hold. The one that would pass it ends
//     the client with FATAL 54000 (program_limit_exceeded, PostgreSQL's code for its own
//     notification queue being full), logged with the bytes it held; the queue is dropped
//     at once. The FATAL goes out if the client's socket takes it within killWith's
//     wait; one that stopped reading is closed without it, as PgBouncer closes a client
//     whose socket does not take its error.
//
// Other listeners lose nothing and wait for nobody. The queue being written when the
// bound is met (taken by writeNotes) is at most notesMax too.

// notesMax bounds the bytes of notifications waiting for one client outside SUSPEND:
// 256 times PgBouncer's pkt_buf, 130 notifications of PostgreSQL's largest (8000 bytes),
// thousands of usual ones. A client that keeps reading drains them as they come; one in
// a long answer it reads slowly gets them after it, and only a channel that carries more
// than 1 MiB meanwhile ends it.
const notesMax = 1 << 20

// notesWait is how long a writer of notifications waits for a client's socket to take
// them before it ends the client (writeNotes, notesLater).
const notesWait = 5 * time.Second

// notesNow writes queued notifications for the listener's reader, which holds s.wmu
// (Notify): whole ones into the writer as long as they fit, then to the socket as far as
// it takes them now. What it does not take, and what queues meanwhile, notesLater writes
// on a goroutine of its own, which lets go of s.wmu; else notesNow does.
func (s *Session) notesNow() {
	if s.tls {
		go s.notesLater() // TryFlush would wait on a TLS socket
		return
	}
	b := s.notes.Load()
	for !s.notesHeld() && !s.closed.Load() && b.pending.Load() {
		b.mu.Lock()
		n, room := 0, s.wr.Room()
		for n < len(b.q) && len(b.q[n]) < room {
			room -= len(b.q[n])
			_ = s.wr.Write(b.q[n]) // it fits: a copy
			b.size -= len(b.q[n])
			b.q[n] = nil
			n++
		}
		if b.q = b.q[n:]; len(b.q) == 0 {
			b.q = nil
			b.pending.Store(false)
		}
		b.mu.Unlock()
		switch err := s.wr.TryFlush(); {
		case err == syscall.EAGAIN:
			go s.notesLater()
			return
		case err != nil:
			s.clientWriteFailed()
		}
	}
	s.unlockW()
}

// notesLater sends, on a goroutine that may wait, what notesNow left in the writer, then
// what queued meanwhile (unlockW), and lets go of s.wmu, which it holds.
func (s *Session) notesLater() {
	if s.wr.Buffered() > 0 && !s.closed.Load() {
		_ = s.nc.SetWriteDeadline(time.Now().Add(notesWait))
		err := s.wr.Flush()
		_ = s.nc.SetWriteDeadline(time.Time{})
		if err != nil {
			s.clientWriteFailed()
		}
	}
	s.unlockW()
}

// notesOverflow ends a client whose queue would have passed notesMax with n bytes (see
// above); the listener's reader calls it, and does not wait for the end.
func (s *Session) notesOverflow(n int) {
	s.log().Warn("client does not read its notifications: closing it", zap.String("db", s.dbName),
		zap.String("user", s.user), zap.Int("queued_bytes", n), zap.Int("max_bytes", notesMax))
	pe := pgerr.Fatal(pgerr.ProgramLimitExceeded, "pgmux: too many notifications waiting for this client").
		WithDetail("%d bytes of notifications were waiting for the client to read them; pgmux holds at most %d.", n, notesMax).
		WithHint("A client that listens must read what arrives; reconnect, and look for what was missed.")
	go s.killWith(pe)
}
