package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// LISTEN/NOTIFY multiplexing (listen_mode = multiplex). A client's LISTEN outside a
// transaction does not touch its pooled servers: pgmux holds one listener connection per
// database, LISTENs there on the union of its clients' channels, and copies each
// notification to every client listening on that channel, in order, between whole
// messages. LISTEN inside a transaction (or mixed with other statements) falls back to
// pinning, so a rollback undoes it exactly as PostgreSQL would. A DO block made only of
// LISTEN and UNLISTEN counts as those statements (listen_do.go).

// listenHub owns the per-database listeners.
//
// Owners: srv is set once; mu guards byDB, which sessions (subscribing), the console
// (SHOW SERVERS) and shutdown (closeAll) use from their own goroutines.
type listenHub struct {
	srv  *Server
	mu   sync.Mutex
	byDB map[string]*listener
}

func newListenHub(s *Server) *listenHub { return &listenHub{srv: s, byDB: make(map[string]*listener)} }

// listenCmd is a command sent on the listener connection; then runs under l.mu when its
// ReadyForQuery arrives (or the connection is lost), before any later notification is
// fanned out, and done (if not nil) gets the outcome.
//
// Owners: the goroutine that sends the command (a subscribing session's, or one asking
// for a fence) queues it on l.waiting under l.mu and may wait on done; the listener
// connection's reader (Pump, or lost) takes it off under l.mu, runs then and sends the
// one result on done.
type listenCmd struct {
	done chan error
	then func(err error)
}

// listener is one database's notification connection and its subscribers.
//
// Owners: hub, db, entry and log are set when it is made and never change; mu guards the
// rest and writes to conn.Wr. Sessions subscribe and unsubscribe from their goroutines,
// the listener connection's reader (Pump) matches answers and fans notifications out,
// the console reads connInfo and shutdown closes it, all under mu; conn.Rd belongs to
// that reader (pool.Conn's rule).
type listener struct {
	hub   *listenHub
	db    string
	entry *poolEntry
	log   *zap.Logger

	mu      sync.Mutex // guards everything below, and writes to conn.Wr
	subs    map[string]map[*Session]struct{}
	pool    *pool.Pool
	conn    *pool.Conn
	waiting []listenCmd    // LISTEN/UNLISTEN commands and fences sent, oldest first
	pending map[string]int // subscriptions waiting for their LISTEN to complete
	cmdErr  error
	closed  bool
	// fenceCur is the fence sent and not yet answered, fenceNext the one asked for
	// meanwhile, sent when fenceCur's answer arrives (listen_fence.go).
	fenceCur, fenceNext *fence
}

func (h *listenHub) forDB(e *poolEntry) *listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.byDB[e.key.db]
	if !ok {
		l = &listener{hub: h, db: e.key.db, entry: e, subs: make(map[string]map[*Session]struct{}),
			pending: make(map[string]int),
			log:     h.srv.log.With(zap.String("db", e.key.db), zap.String("role", "listener"))}
		h.byDB[e.key.db] = l
	}
	return l
}

// all returns the listeners, for SHOW SERVERS.
func (h *listenHub) all() []*listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*listener, 0, len(h.byDB))
	for _, l := range h.byDB {
		out = append(out, l)
	}
	return out
}

// connInfo returns the listener's server connection (nil when not connected) and the
// user it logged in as.
func (l *listener) connInfo() (*pool.Conn, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	db, _, _ := l.entry.snapshot()
	user := l.entry.key.user
	if db.User != "" {
		user = db.User
	}
	return l.conn, user
}

// closeAll closes every listener's pool and returns them (Stop waits until they end).
func (h *listenHub) closeAll() []*pool.Pool {
	h.mu.Lock()
	ls := make([]*listener, 0, len(h.byDB))
	for _, l := range h.byDB {
		ls = append(ls, l)
	}
	h.mu.Unlock()
	var closed []*pool.Pool
	for _, l := range ls {
		l.mu.Lock()
		l.closed = true
		p, c := l.pool, l.conn
		l.mu.Unlock()
		if c != nil {
			// Leased for good: its pool's Close would close it only at a release that
			// never comes. Its reader sees the break; lost does not reconnect (closed).
			c.Discard(errListenerStopped)
		}
		if p != nil {
			p.Close()
			closed = append(closed, p)
		}
	}
	return closed
}

// errListenerStopped closes a LISTEN listener's connection at shutdown.
var errListenerStopped = errors.New("pgmux is shutting down")

// subscribe adds s to channel and returns once notifications committed after this point
// reach s. The listener may already listen there and have older notifications on their
// way, so s joins only after two round trips on the listener connection: the server
// sends the notifications it holds when it goes idle after the first (a LISTEN), so all
// of them arrive before the answer to the second, and s never sees one committed before
// its own LISTEN.
func (l *listener) subscribe(ctx context.Context, s *Session, channel string) error {
	result := make(chan error, 1)
	join := func(err error) { // runs under l.mu, from the listener's reader
		l.pending[channel]--
		if err == nil && !s.closed.Load() {
			set := l.subs[channel]
			if set == nil {
				set = make(map[*Session]struct{})
				l.subs[channel] = set
			}
			if _, ok := set[s]; !ok {
				set[s] = struct{}{}
				s.notifyBox().channels.Add(1)
			}
		}
		result <- err
	}
	listen := "LISTEN " + quoteIdent(channel)
	l.mu.Lock()
	l.pending[channel]++
	_, err := l.commandLocked(ctx, listen, func(err error) {
		if err != nil {
			join(err)
			return
		}
		if _, err := l.commandLocked(context.Background(), listen, join); err != nil {
			join(err)
		}
	})
	if err != nil {
		l.pending[channel]--
		l.mu.Unlock()
		return err
	}
	l.mu.Unlock()
	return waitDone(ctx, result)
}

// unsubscribe removes s from channel ("" means every channel), UNLISTENing on the server
// when nobody is left or about to subscribe.
func (l *listener) unsubscribe(s *Session, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch, set := range l.subs {
		if channel != "" && ch != channel {
			continue
		}
		if _, ok := set[s]; !ok {
			continue
		}
		delete(set, s)
		s.notifyBox().channels.Add(-1)
		if len(set) == 0 && l.pending[ch] == 0 {
			delete(l.subs, ch)
			if l.conn != nil {
				_, _ = l.commandLocked(context.Background(), "UNLISTEN "+quoteIdent(ch), nil)
			}
		}
	}
}

// commandLocked sends a LISTEN/UNLISTEN on the listener connection, connecting it first
// if needed; l.mu is held. then, if not nil, runs under l.mu when the answer arrives.
func (l *listener) commandLocked(ctx context.Context, sql string, then func(error)) (chan error, error) {
	if l.closed {
		return nil, errors.New("listener is closed")
	}
	if l.conn == nil {
		if err := l.connectLocked(ctx); err != nil {
			return nil, err
		}
	}
	done := make(chan error, 1)
	l.waiting = append(l.waiting, listenCmd{done: done, then: then})
	err := l.conn.Wr.Write(wire.Query(nil, sql))
	if err == nil {
		err = l.conn.Wr.Flush()
	}
	if err != nil {
		// The connection is broken: this command gets no answer. Closing it makes Pump
		// see the break, fail the commands still queued and reconnect (lost).
		l.waiting = l.waiting[:len(l.waiting)-1]
		l.conn.Discard(err)
		return nil, fmt.Errorf("listener connection: %w", err)
	}
	return done, nil
}

func (l *listener) connectLocked(ctx context.Context) error {
	if l.pool == nil {
		cfg := l.hub.srv.Config()
		db, _, _ := l.entry.snapshot()
		opts := l.hub.srv.pools.options(cfg, l.entry, db, l.entry.key.user)
		opts.Size, opts.MinSize, opts.ReserveSize = 1, 0, 0
		opts.Lifetime, opts.IdleTimeout, opts.CheckQuery, opts.ResetQuery = 0, 0, "", ""
		opts.Logger = l.log
		p, err := pool.New(opts)
		if err != nil {
			return err
		}
		l.pool = p
	}
	c, err := l.pool.Acquire(ctx, l)
	if err != nil {
		return fmt.Errorf("listener connection: %w", err)
	}
	l.conn = c
	l.log.Info("listener connected")
	return nil
}

func waitDone(ctx context.Context, done chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the listener: %w", ctx.Err())
	}
}

// Pump reads the listener connection: command answers and notifications.
func (l *listener) Pump(c *pool.Conn) error {
	for {
		typ, n, err := c.Rd.Next()
		if err != nil {
			l.lost(c, err)
			return err
		}
		m, err := c.Rd.Message(n)
		if err != nil {
			l.lost(c, err)
			return err
		}
		switch typ {
		case 'A':
			l.fanOut(m)
		case 'E':
			pe, _ := pgerr.Parse(wire.Body(m))
			l.mu.Lock()
			l.cmdErr = pe
			l.mu.Unlock()
		case 'Z':
			l.mu.Lock()
			if len(l.waiting) > 0 {
				cmd := l.waiting[0]
				l.waiting = l.waiting[1:]
				if cmd.then != nil {
					cmd.then(l.cmdErr)
				}
				if cmd.done != nil {
					cmd.done <- l.cmdErr
				}
			}
			l.cmdErr = nil
			l.mu.Unlock()
		}
	}
}

// fanOut copies one NotificationResponse to every client listening on its channel.
func (l *listener) fanOut(m []byte) {
	body := wire.Body(m)
	if len(body) < 5 {
		return
	}
	ch, _, err := wire.CString(body[4:])
	if err != nil {
		return
	}
	msg := append([]byte(nil), m...)
	l.mu.Lock()
	set := l.subs[unsafe.String(unsafe.SliceData(ch), len(ch))]
	targets := make([]*Session, 0, len(set))
	for s := range set {
		targets = append(targets, s)
	}
	l.mu.Unlock()
	for _, s := range targets {
		s.notify(msg)
	}
}

// lost handles the listener connection breaking: reconnect with backoff and LISTEN again
// on every channel that still has clients.
func (l *listener) lost(c *pool.Conn, err error) {
	l.mu.Lock()
	if l.conn != c {
		l.mu.Unlock()
		return
	}
	l.conn = nil
	for _, w := range l.waiting {
		lostErr := fmt.Errorf("listener connection lost: %w", err)
		if w.then != nil {
			w.then(lostErr)
		}
		if w.done != nil {
			w.done <- lostErr
		}
	}
	l.waiting = nil
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return
	}
	l.log.Warn("listener connection lost; notifications sent until it is back are missed", zap.Error(err))
	go l.reconnect()
}

func (l *listener) reconnect() {
	delay := 100 * time.Millisecond
	for attempt := 0; attempt < 1000; attempt++ {
		time.Sleep(delay)
		if delay < 10*time.Second {
			delay *= 2
		}
		l.mu.Lock()
		if l.closed || len(l.subs) == 0 || l.conn != nil {
			l.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.connectLocked(ctx)
		cancel()
		if err == nil {
			for ch := range l.subs {
				_, _ = l.commandLocked(context.Background(), "LISTEN "+quoteIdent(ch), nil)
			}
			l.mu.Unlock()
			l.log.Info("listener reconnected", zap.Int("channels", len(l.subs)))
			return
		}
		l.mu.Unlock()
		l.log.Warn("listener reconnect failed", zap.Error(err))
	}
}

// betweenTransactions reports whether the client holds no server, or holds one only
// because its reader has not yet let go after the last ReadyForQuery: no transaction,
// nothing pending, no session state. A LISTEN then needs no server; sending it to the
// linked one would pin the client and, with a shared subscription, deliver twice.
func (s *Session) betweenTransactions() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil {
		return true
	}
	return s.mode != config.PoolModeSession && s.pending == 0 && !s.unsynced && s.q.len() == 0 &&
		s.txStatus == 'I' && s.pinned == 0
}

// listenLocally answers a simple Query made only of LISTEN and UNLISTEN statements, and
// of DO blocks that do nothing else (see listenStatement), without a server. It reports
// whether it handled (and consumed) the message.
func (s *Session) listenLocally(n int) (bool, error) {
	if n > maxInspect || !s.betweenTransactions() || s.srv.Config().ListenMode != "multiplex" {
		return false, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return false, err
	}
	text, _, err := wire.CString(wire.Body(m))
	if err != nil || len(text) == 0 {
		return false, nil
	}
	q := unsafe.String(&text[0], len(text))
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
	l := s.srv.hub.forDB(s.entry)
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

// notify queues a notification for the client and writes it now if nobody else is
// writing to the client; otherwise the current writer delivers it before letting go.
func (s *Session) notify(msg []byte) {
	if s.closed.Load() {
		return
	}
	b := s.notifyBox()
	b.mu.Lock()
	b.q = append(b.q, msg)
	b.mu.Unlock()
	s.notifyPending.Store(true)
	if s.wmu.TryLock() {
		s.drainNotify()
		s.unlockW()
	}
}

// drainNotify writes queued notifications; s.wmu is held, at a message boundary.
func (s *Session) drainNotify() {
	if !s.notifyPending.Load() {
		return
	}
	b := s.notifyBox()
	b.mu.Lock()
	q := b.q
	b.q = nil
	s.notifyPending.Store(false)
	b.mu.Unlock()
	if s.closed.Load() {
		return
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
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
// was held.
func (s *Session) unlockW() {
	for {
		s.wmu.Unlock()
		if !s.notifyPending.Load() || !s.wmu.TryLock() {
			return
		}
		s.drainNotify()
	}
}

// notifyBox holds notifications waiting for the client's writer to be free: the
// listener's reader appends, whoever next holds Session.wmu drains; mu guards q.
// channels counts the client's subscriptions on the shared listener (changed by the
// listener under its mu, read by the session goroutine); fence is the one the client's
// latest request asked for (stored by the session goroutine, read by whoever writes the
// request's ReadyForQuery; listen_fence.go).
type notifyBox struct {
	mu       sync.Mutex
	q        [][]byte
	channels atomic.Int32
	fence    atomic.Pointer[fence]
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
