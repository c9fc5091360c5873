package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/listenmux"
)

// LISTEN/NOTIFY multiplexing (listen_mode = multiplex). A client's LISTEN outside a
// transaction does not touch its pooled servers: pgmux holds one listener connection per
// database (package listenmux), LISTENs there on the union of its clients' channels, and
// copies each notification to every client listening on that channel, in order, between
// whole messages. LISTEN inside a transaction (or mixed with other statements) falls back to
// pinning, so a rollback undoes it exactly as PostgreSQL would. A DO block made only of
// LISTEN and UNLISTEN counts as those statements (listen_do.go).

// listenerFor returns the shared listener of e's database (package listenmux), making
// it on first use. Get comes first so that the Source's closures are built only then: a
// listening client asks for its listener at every request (askFence).
func (s *Server) listenerFor(e *poolEntry) *listenmux.Listener {
	if l := s.hub.Get(e.key.db); l != nil {
		return l
	}
	// Made under the console's lock: a PAUSE finds it in the hub, or it is made paused.
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	l := s.hub.Add(e.key.db, listenmux.Source{
		Options: func() pool.Options {
			db, _, _ := e.snapshot()
			return s.pools.options(s.Config(), e, db, e.key.user)
		},
		User: func() string {
			if db, _, _ := e.snapshot(); db.User != "" {
				return db.User
			}
			return e.key.user
		},
		Gap: func() { s.metrics.ListenerGap(e.key.db) },
	})
	if c.closesServers(e.key.db) {
		l.Pause()
	}
	return l
}

// holdListenersLocked brings the shared LISTEN connections of db (of every database when
// db is "") in line with the console's holds, as holdPoolLocked does the pools: PAUSE
// and KILL close them, and once no hold closes them they connect again, LISTENing on
// every channel that has subscribers, before this returns (at most a moment: a database
// still down is retried in the background). It returns the pools whose connection is
// closing, for PAUSE to wait on; s.console.mu is held.
func (s *Server) holdListenersLocked(db string) []*pool.Pool {
	c := s.console
	var closing []*pool.Pool
	for _, l := range s.hub.All() {
		if db != "" && l.DB() != db {
			continue
		}
		if !c.closesServers(l.DB()) {
			l.Resume()
		} else if p := l.Pause(); p != nil {
			closing = append(closing, p)
		}
	}
	return closing
}

// Notify queues a notification from the shared listener (listenmux.Subscriber) for the
// client and, if nobody else is writing to the client, writes what its socket takes now
// (notesNow); otherwise the current writer delivers it before letting go. While the
// pooler is SUSPENDed it only queues (notesHeld). A queue that would pass notesMax ends
// the client instead (notesOverflow).
func (s *Session) Notify(msg []byte) {
	if s.closed.Load() {
		return
	}
	b := s.notifyBox()
	b.mu.Lock()
	if b.over {
		b.mu.Unlock()
		return
	}
	if b.size+len(msg) > notesMax && !s.notesHeld() {
		n := b.size + len(msg)
		b.q, b.size, b.over = nil, 0, true
		b.pending.Store(false)
		b.mu.Unlock()
		s.notesOverflow(n)
		return
	}
	b.q = append(b.q, msg)
	b.size += len(msg)
	b.pending.Store(true)
	b.mu.Unlock()
	if !s.notesHeld() && s.wmu.TryLock() {
		s.notesNow()
	}
}

// Subscribed counts the client's subscriptions on the shared listener
// (listenmux.Subscriber): a request of a client that has some asks for a fence.
func (s *Session) Subscribed(delta int32) { s.notifyBox().channels.Add(delta) }

// Gone reports whether the client has left (listenmux.Subscriber).
func (s *Session) Gone() bool { return s.closed.Load() }

// betweenTransactions reports whether the client holds no server, or holds one only
// because its reader has not yet let go after the last ReadyForQuery: no transaction,
// nothing pending, no session state. A LISTEN then needs no server; sending it to the
// linked one would pin the client (and, with a shared subscription on the same channel,
// the server's copies of its notifications are dropped: sharedCopy).
func (s *Session) betweenTransactions() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil {
		return true
	}
	return s.mode != config.PoolModeSession && s.Quiet(&s.q.ring) && s.TxStatus == 'I' && s.pinned == 0
}

// sharedCopy reports whether a NotificationResponse from the client's server (it
// LISTENed there too: in a transaction block, or while pinned) is on a channel the client
// also receives from the shared listener. PostgreSQL delivers a notification once to a
// client however often it LISTENed; the shared listener's copy is the one kept, since it
// keeps coming when the server-side LISTEN ends and is ordered by the fence. The message
// is not consumed. Server's reader.
func (s *Session) sharedCopy(rd *wire.Reader, n int) bool {
	b := s.notes.Load()
	if b == nil || b.channels.Load() == 0 {
		return false
	}
	m, err := rd.Peek(n)
	if err != nil {
		return false
	}
	body := wire.Body(m)
	if len(body) < 5 {
		return false
	}
	ch, _, err := wire.CString(body[4:])
	if err != nil {
		return false
	}
	l := s.srv.hub.Get(s.entry.key.db)
	return l != nil && l.Subscribed(s, string(ch))
}

// listenLocally answers a simple Query made only of LISTEN and UNLISTEN statements, and
// of DO blocks that do nothing else (see listenStatement), without a server. It reports
// whether it handled (and consumed) the message.
func (s *Session) listenLocally(n int) (bool, error) {
	if n > maxInspect || !s.betweenTransactions() || s.srv.Config().ListenMode != "multiplex" {
		return false, nil
	}
	q, err := s.peekQuery(n)
	if err != nil || q == "" {
		return false, err
	}
	if !s.maybeInteresting(q) {
		return false, nil
	}
	// The text is a view of the read buffer: names kept beyond this call are cloned.
	stmts := sqlscan.Scan(q)
	if len(stmts) == 0 {
		return false, nil
	}
	for i := range stmts {
		if !listenStatement(&stmts[i]) {
			return false, nil
		}
	}
	if _, err := s.rd.Message(n); err != nil {
		return true, err
	}
	l := s.srv.listenerFor(s.entry)
	var b []byte
	for i := range stmts {
		tag, pe := s.listenShared(l, &stmts[i])
		if pe != nil {
			b = pe.Append(b)
			return true, s.writeClient(wire.ReadyForQuery(b, 'I'))
		}
		var start int
		b, start = wire.Begin(b, 'C')
		b = wire.AppendString(b, tag)
		b = wire.Finish(b, start)
	}
	return true, s.writeClient(wire.ReadyForQuery(b, 'I'))
}

// drainNotify writes queued notifications; s.wmu is held, at a message boundary. While
// the pooler is SUSPENDed they stay queued (notesHeld).
func (s *Session) drainNotify() {
	if !s.notesPending() || s.notesHeld() {
		return
	}
	s.writeNotes()
}

// writeNotes writes queued notifications whatever the holds; s.wmu is held, at a message
// boundary.
func (s *Session) writeNotes() {
	b := s.notifyBox()
	b.mu.Lock()
	q := b.q
	b.q, b.size = nil, 0
	b.pending.Store(false)
	b.mu.Unlock()
	if s.closed.Load() {
		return
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(notesWait))
	var err error
	for _, m := range q {
		if err = s.wr.Write(m); err != nil {
			break
		}
	}
	if err == nil {
		err = s.wr.Flush()
	}
	_ = s.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		s.clientWriteFailed()
	}
}

// unlockW lets go of the client writer, delivering notifications that arrived while it
// was held, unless the pooler is SUSPENDed: then RESUME delivers them (sendHeldNotes).
func (s *Session) unlockW() {
	for {
		s.wmu.Unlock()
		if !s.notesPending() || s.notesHeld() || !s.wmu.TryLock() {
			return
		}
		s.drainNotify()
	}
}

// notifyBox holds notifications waiting for the client's writer to be free: the
// listener's reader appends, whoever next holds Session.wmu drains; mu guards q, size
// (q's bytes) and over (q passed notesMax: the client is being ended, and gets no more),
// and pending says q has some (atomic: each writer that lets go looks, notesPending).
// channels counts the client's subscriptions on the shared listener (changed by the
// listener under its mu through Subscribed, read by the session goroutine); fence is the
// one the client's latest request asked for (stored by the session goroutine, read by
// whoever writes the request's ReadyForQuery; listen_fence.go).
type notifyBox struct {
	mu       sync.Mutex
	q        [][]byte
	size     int
	over     bool
	channels atomic.Int32
	pending  atomic.Bool
	fence    atomic.Pointer[listenmux.Fence]
	// u tracks the client's UNLISTENs sent to servers (listen_tx.go): written by the
	// session goroutine under umu, read by the server's reader under umu.
	umu sync.Mutex
	u   *unlistenState
	// selfNotify: the client's latest request may NOTIFY (its text says notify), so its
	// ReadyForQuery asks for a fence of its own (listen_fence.go:askSelfFence).
	selfNotify atomic.Bool
	// reqOpen: the client's extended-protocol request awaits its Sync (askFence); the
	// session goroutine's.
	reqOpen bool
}

// notesPending reports whether notifications wait in the session's box. For a client
// that never listened it costs what a flag in the Session did: one load.
func (s *Session) notesPending() bool {
	b := s.notes.Load()
	return b != nil && b.pending.Load()
}

// notifyBox returns the session's box, making it on first use (its first subscription):
// only clients that listen pay for it.
func (s *Session) notifyBox() *notifyBox {
	if b := s.notes.Load(); b != nil {
		return b
	}
	s.notes.CompareAndSwap(nil, new(notifyBox))
	return s.notes.Load()
}
