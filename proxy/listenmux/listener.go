// Package listenmux multiplexes LISTEN/NOTIFY (listen_mode = multiplex): per database,
// one server connection LISTENs on the union of its subscribers' channels and copies
// each notification to every subscriber of that channel, in the order the server sent
// them. Package proxy decides which client statements come here (a LISTEN or UNLISTEN
// outside a transaction) and delivers what a Subscriber is handed between the client's
// whole messages; this package owns the listening connections, the subscriptions, their
// reconnection, and the fences that keep a client's answers behind the notifications
// committed before its request (fence.go).
//
// It knows nothing of client sessions beyond the Subscriber interface, and nothing of
// configuration beyond the pool options a Source gives it.
package listenmux

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Subscriber is a client listening through a Listener. Its methods run on the listener
// connection's reader goroutine (Subscribed under the listener's lock, the others
// outside it): they must not block or call back into the Listener.
type Subscriber interface {
	// Notify hands over one NotificationResponse, the whole message; the subscriber
	// owns it from then on.
	Notify(msg []byte)
	// Backlog returns nil when the subscriber can take more notifications; else a
	// channel closed when that may have changed: it holds all it may and cannot pass
	// them on now (the console's SUSPEND). The reader then reads no more (waitRoom).
	Backlog() <-chan struct{}
	// Subscribed is told each time the subscriber's count of channels goes up (+1) or
	// down (-1).
	Subscribed(delta int32)
	// Gone reports whether the subscriber has left: a subscription that completes
	// after that is dropped.
	Gone() bool
}

// Source is how a listener reaches its database.
type Source struct {
	// Options returns the pool options its connection is made with; the listener sets
	// the pool's size, lifetimes, queries and logger itself.
	Options func() pool.Options
	// User is the user its connection logs in as (SHOW SERVERS).
	User func() string
	// Gap, when set, is told each time the subscribers are told that notifications may
	// have been missed (gapLocked), with l.mu held: it must not block (a metric).
	Gap func()
}

// Hub owns the per-database listeners.
//
// Owners: log is set once; mu guards byDB, which sessions (subscribing), the console
// (SHOW SERVERS) and shutdown (CloseAll) use from their own goroutines.
type Hub struct {
	log  *zap.Logger
	mu   sync.Mutex
	byDB map[string]*Listener
}

// NewHub returns a hub with no listener; log is where listeners log.
func NewHub(log *zap.Logger) *Hub { return &Hub{log: log, byDB: make(map[string]*Listener)} }

// command is a command sent on the listener connection; then runs under l.mu when its
// ReadyForQuery arrives (or the connection is lost), before any later notification is
// fanned out, and done (if not nil) gets the outcome.
//
// Owners: the goroutine that sends the command (a subscribing session's, or one asking
// for a fence) queues it on l.waiting under l.mu and may wait on done; the listener
// connection's reader (Pump, or lost) takes it off under l.mu, runs then and sends the
// one result on done.
type command struct {
	done chan error
	then func(err error)
}

// Listener is one database's notification connection and its subscribers.
//
// Owners: db, src and log are set when it is made and never change; mu guards the rest
// and writes to conn.Wr. Sessions subscribe and unsubscribe from their goroutines, the
// listener connection's reader (Pump) matches answers and fans notifications out, the
// console reads Conn and shutdown closes it, all under mu; conn.Rd belongs to that
// reader (pool.Conn's rule).
type Listener struct {
	db  string
	src Source
	log *zap.Logger

	mu      sync.Mutex // guards everything below, and writes to conn.Wr
	subs    map[string]map[Subscriber]struct{}
	pool    *pool.Pool
	conn    *pool.Conn
	waiting []command      // LISTEN/UNLISTEN commands and fences sent, oldest first
	pending map[string]int // subscriptions waiting for their LISTEN to complete
	cmdErr  error
	closed  bool
	paused  bool // PAUSE or KILL: no connection until Resume (pause.go)
	// fenceCur is the fence sent and not yet answered, fenceNext the one asked for
	// meanwhile, sent when fenceCur's answer arrives (fence.go).
	fenceCur, fenceNext *Fence
	// relistened is closed once the LISTENs its latest connection sent (connectedLocked)
	// are answered, or the connection is lost; nil when it sent none. lastTry is when
	// Restore last connected inline.
	relistened chan struct{}
	lastTry    time.Time
	// lostAt is when the connection broke with subscribers not yet told of the gap: set
	// by lost (the earliest loss not reported), cleared once they are (gapLocked). tell
	// holds the subscribers to hand tellMsg, a NoticeResponse about that gap, which Pump
	// delivers outside mu.
	lostAt  time.Time
	tell    []Subscriber
	tellMsg []byte
	// acquire, when set (tests), stands for the pool's Acquire in connectLocked.
	acquire func(ctx context.Context) (*pool.Conn, error)
}

func newListener(db string, src Source, log *zap.Logger) *Listener {
	return &Listener{db: db, src: src, log: log, subs: make(map[string]map[Subscriber]struct{}),
		pending: make(map[string]int)}
}

// Get returns db's listener, or nil when it has none yet.
func (h *Hub) Get(db string) *Listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byDB[db]
}

// Add returns db's listener, making it with src if it has none (it then keeps that
// source for good).
func (h *Hub) Add(db string, src Source) *Listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.byDB[db]
	if !ok {
		l = newListener(db, src, h.log.With(zap.String("db", db), zap.String("role", "listener")))
		h.byDB[db] = l
	}
	return l
}

// All returns the listeners, for SHOW SERVERS.
func (h *Hub) All() []*Listener {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Listener, 0, len(h.byDB))
	for _, l := range h.byDB {
		out = append(out, l)
	}
	return out
}

// DB is the database the listener listens in.
func (l *Listener) DB() string { return l.db }

// Conn returns the listener's server connection (nil when not connected) and the user
// it logs in as.
func (l *Listener) Conn() (*pool.Conn, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn, l.src.User()
}

// CloseAll closes every listener and its pool, and returns the pools (the caller may wait
// until they end).
func (h *Hub) CloseAll() []*pool.Pool {
	var closed []*pool.Pool
	for _, l := range h.All() {
		l.mu.Lock()
		l.closed = true
		p, c := l.pool, l.conn
		l.mu.Unlock()
		if c != nil {
			// Leased for good: its pool's Close would close it only at a release that
			// never comes. Its reader sees the break; lost does not reconnect (closed).
			c.Discard(errStopped)
		}
		if p != nil {
			p.Close()
			closed = append(closed, p)
		}
	}
	return closed
}

// errStopped closes a listener's connection at shutdown.
var errStopped = errors.New("pgmux is shutting down")

// Subscribe adds sub to channel and returns once notifications committed after this
// point reach sub. The listener may already listen there and have older notifications
// on their way, so sub joins only after two round trips on the listener connection: the
// server sends the notifications it holds when it goes idle after the first (a LISTEN),
// so all of them arrive before the answer to the second, and sub never sees one
// committed before its own LISTEN.
//
// A LISTEN that meets the listener connection broken or refused (PostgreSQL restarting)
// tries again every subscribeRetry until ctx ends, as a query waits for a server: it
// fails only on the server's own refusal, when ctx ends, once the listener is closed, or
// once sub is gone (its client left).
func (l *Listener) Subscribe(ctx context.Context, sub Subscriber, channel string) error {
	for {
		err := l.subscribeOnce(ctx, sub, channel)
		if err == nil || sub.Gone() || !l.retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			// The wait ended during the attempt: its end, with the last failure, as when it
			// ends between attempts (not the failure alone, as if nothing had waited).
			return fmt.Errorf("waiting for the listener connection: %w (last: %v)", ctx.Err(), err)
		}
		t := time.NewTimer(subscribeRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the listener connection: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// subscribeRetry is how long a LISTEN that met the listener connection down waits before
// trying again (the listener's own reconnects run meanwhile, reconnectDelay).
const subscribeRetry = 100 * time.Millisecond

// retryable reports whether a failed LISTEN may be tried again: the connection broke or
// could not be made, or the server is going down or starting up (SQLSTATE class 08, or
// 57P01-57P03); not another answer of the server's (the LISTEN's own error, a login
// refused), nor a wait's end, nor the listener's close.
func (l *Listener) retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) && (pe == nil || !strings.HasPrefix(pe.Code, "08") && !strings.HasPrefix(pe.Code, "57P")) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// subscribeOnce is one attempt of Subscribe.
func (l *Listener) subscribeOnce(ctx context.Context, sub Subscriber, channel string) error {
	result := make(chan error, 1)
	join := func(err error) { // runs under l.mu, from the listener's reader
		l.pending[channel]--
		if err == nil && !sub.Gone() {
			set := l.subs[channel]
			if set == nil {
				set = make(map[Subscriber]struct{})
				l.subs[channel] = set
			}
			if _, ok := set[sub]; !ok {
				set[sub] = struct{}{}
				sub.Subscribed(1)
			}
		}
		result <- err
	}
	listen := "LISTEN " + sqlscan.QuoteIdent(channel)
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
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the listener: %w", ctx.Err())
	}
}

// Subscribed reports whether sub receives channel's notifications from the listener.
func (l *Listener) Subscribed(sub Subscriber, channel string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.subs[channel][sub]
	return ok
}

// Unsubscribe removes sub from channel ("" means every channel), UNLISTENing on the
// server when nobody is left or about to subscribe.
func (l *Listener) Unsubscribe(sub Subscriber, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch, set := range l.subs {
		if channel != "" && ch != channel {
			continue
		}
		if _, ok := set[sub]; !ok {
			continue
		}
		delete(set, sub)
		sub.Subscribed(-1)
		if len(set) == 0 && l.pending[ch] == 0 {
			delete(l.subs, ch)
			if l.conn != nil {
				_, _ = l.commandLocked(context.Background(), "UNLISTEN "+sqlscan.QuoteIdent(ch), nil)
			}
		}
	}
}

// commandLocked sends a LISTEN/UNLISTEN on the listener connection, connecting it first
// if needed; l.mu is held. then, if not nil, runs under l.mu when the answer arrives.
func (l *Listener) commandLocked(ctx context.Context, sql string, then func(error)) (chan error, error) {
	if l.closed {
		return nil, errors.New("listener is closed")
	}
	if l.conn == nil {
		if err := l.connectLocked(ctx); err != nil {
			return nil, err
		}
	}
	done := make(chan error, 1)
	l.waiting = append(l.waiting, command{done: done, then: then})
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

func (l *Listener) connectLocked(ctx context.Context) error {
	if l.paused {
		return errPaused
	}
	if l.pool == nil && l.acquire == nil {
		opts := l.src.Options()
		opts.Size, opts.MinSize, opts.ReserveSize = 1, 0, 0
		opts.Lifetime, opts.IdleTimeout, opts.CheckQuery, opts.ResetQuery = 0, 0, "", ""
		opts.Logger = l.log
		p, err := pool.New(opts)
		if err != nil {
			return err
		}
		l.pool = p
	}
	var c *pool.Conn
	var err error
	if l.acquire != nil {
		c, err = l.acquire(ctx)
	} else {
		c, err = l.pool.Acquire(ctx, l)
	}
	if err != nil {
		return fmt.Errorf("listener connection: %w", err)
	}
	l.connectedLocked(c)
	return nil
}

// connectedLocked makes c the listener connection and LISTENs again on every channel that
// still has subscribers; l.mu is held. After a loss, whoever connects first restores
// them: reconnect, or a new subscriber's LISTEN (commandLocked) arriving before it, which
// would otherwise leave every other channel unheard until its clients listened again.
func (l *Listener) connectedLocked(c *pool.Conn) {
	l.conn = c
	l.relistened = nil
	l.log.Info("listener connected")
	if n := len(l.subs); n > 0 {
		done := make(chan struct{})
		i := 0
		for ch := range l.subs {
			var then func(error)
			if i++; i == n { // answered last: the LISTENs before it are too
				then = func(error) {
					close(done)
					if l.conn == c && !l.lostAt.IsZero() {
						l.gapLocked(time.Now())
					}
				}
			}
			if _, err := l.commandLocked(context.Background(), "LISTEN "+sqlscan.QuoteIdent(ch), then); err != nil {
				close(done) // lost already: Restore does not wait for it
				break
			}
		}
		l.relistened = done
		l.log.Info("listener reconnected", zap.Int("channels", n))
	}
}

// Restore is for a subscriber about to send a request (which may NOTIFY a channel it
// listens on): when the listener has lost its connection it connects again at once, and
// until every subscribed channel is listened to again it waits, at most FenceWait. A
// NOTIFY that commits before that LISTEN is never delivered, and after a PostgreSQL
// restart the subscriber's own server connection comes back at once while the listener
// would wait for its next attempt (reconnect). While connected and listening it only
// looks.
func (l *Listener) Restore() {
	l.mu.Lock()
	if l.closed || l.paused || len(l.subs) == 0 {
		l.mu.Unlock()
		return
	}
	if l.conn == nil {
		if time.Since(l.lastTry) < reconnectDelay(0) {
			l.mu.Unlock()
			return // tried just now (another subscriber, or the server is down)
		}
		l.lastTry = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), FenceWait)
		err := l.connectLocked(ctx) // which LISTENs again (connectedLocked)
		cancel()
		if err != nil {
			l.mu.Unlock()
			return // reconnect keeps trying
		}
	}
	done := l.relistened
	l.mu.Unlock()
	if done != nil {
		waitAtMost(done, FenceWait)
	}
}

// Pump reads the listener connection (pool.Lessee): command answers and notifications.
func (l *Listener) Pump(c *pool.Conn) error {
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
			l.waitRoom(c, l.fanOut(m))
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
			// The notice of a gap, once the LISTENs after it are answered (gapLocked),
			// taken in this critical section and handed out after it.
			tell, msg := l.tell, l.tellMsg
			l.tell, l.tellMsg = nil, nil
			l.mu.Unlock()
			for _, sub := range tell {
				if !sub.Gone() {
					sub.Notify(msg)
				}
			}
		}
	}
}

// gapLocked prepares, once the LISTENs after a loss are answered, the NoticeResponse that
// tells every subscriber notifications may have been missed since lostAt: with its own
// connection to PostgreSQL a client would have seen that connection break, and could
// look for what it missed (a job queue polls, a cache reloads). PostgreSQL may send a
// notice at any time, so every client library accepts one between messages and hands it
// to its notice handler or log. Pump delivers it after the ReadyForQuery that ran this;
// l.mu is held.
func (l *Listener) gapLocked(now time.Time) {
	lost := l.lostAt
	l.lostAt = time.Time{}
	seen := make(map[Subscriber]struct{})
	for _, set := range l.subs {
		for s := range set {
			if _, ok := seen[s]; !ok {
				seen[s] = struct{}{}
				l.tell = append(l.tell, s)
			}
		}
	}
	gap := now.Sub(lost).Round(time.Millisecond)
	l.tellMsg = GapNotice(l.db, lost, gap).AppendNotice(nil)
	if l.src.Gap != nil {
		l.src.Gap()
	}
	l.log.Warn("listener listening again; subscribers told that notifications may have been missed",
		zap.Int("subscribers", len(l.tell)), zap.Duration("gap", gap))
}

// GapNotice is the notice a subscriber gets after the listener of database db lost its
// connection at lost and listened again gap later.
func GapNotice(db string, lost time.Time, gap time.Duration) *pgerr.Error {
	return (&pgerr.Error{Severity: pgerr.SeverityWarning, Code: pgerr.Warning,
		Message: "pgmux: notifications may have been missed: the connection listening on database \"" + db + "\" was lost"}).
		WithDetail("It was lost at %s and listened again %v later; notifications sent meanwhile were not delivered.",
			lost.UTC().Format("2006-01-02 15:04:05.000 MST"), gap).
		WithHint("Anything a missed notification would have started can be found by a query.")
}

// fanOut copies one NotificationResponse to every subscriber of its channel, and
// returns them.
func (l *Listener) fanOut(m []byte) []Subscriber {
	body := wire.Body(m)
	if len(body) < 5 {
		return nil
	}
	ch, _, err := wire.CString(body[4:])
	if err != nil {
		return nil
	}
	msg := append([]byte(nil), m...)
	l.mu.Lock()
	set := l.subs[unsafe.String(unsafe.SliceData(ch), len(ch))]
	targets := make([]Subscriber, 0, len(set))
	for s := range set {
		targets = append(targets, s)
	}
	l.mu.Unlock()
	for _, s := range targets {
		s.Notify(msg)
	}
	return targets
}

// roomCheck is how often a reader stopped by waitRoom looks again without being woken:
// a subscriber that left, a connection that PAUSE or shutdown took away.
const roomCheck = 100 * time.Millisecond

// waitRoom stops the reader while one of subs, handed the last notification, has no room
// left (Subscriber.Backlog), as PgBouncer stops reading a server whose client's buffer
// (pkt_buf) is full: what comes next waits in the connection's socket, then in
// PostgreSQL's notification queue, not in pgmux's memory, and nothing is dropped. No
// subscriber can tell: none is passed a notification while any is full (SUSPEND holds
// them all). It returns once each has room or has left, or c is no longer the listener's.
func (l *Listener) waitRoom(c *pool.Conn, subs []Subscriber) {
	var t *time.Ticker
	for _, s := range subs {
		for wait := s.Backlog(); wait != nil && !s.Gone() && l.reading(c); wait = s.Backlog() {
			if t == nil {
				t = time.NewTicker(roomCheck)
				defer t.Stop()
			}
			select {
			case <-wait:
			case <-t.C:
			}
		}
	}
}

// reading reports whether c is still the listener's connection, to be read on.
func (l *Listener) reading(c *pool.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && !l.paused && l.conn == c
}

// lost handles the listener connection breaking: reconnect with backoff and LISTEN again
// on every channel that still has subscribers.
func (l *Listener) lost(c *pool.Conn, err error) {
	l.mu.Lock()
	if l.conn != c {
		l.mu.Unlock()
		return
	}
	l.conn = nil
	if l.lostAt.IsZero() && len(l.subs) > 0 {
		l.lostAt = time.Now()
	}
	l.failWaitingLocked(err)
	closed, paused := l.closed, l.paused
	l.mu.Unlock()
	if closed {
		return
	}
	if paused {
		l.log.Info("listener connection closed by PAUSE or KILL; connected again at RESUME")
		return
	}
	l.log.Warn("listener connection lost; notifications sent until it is back are missed", zap.Error(err))
	go l.reconnect()
}

// failWaitingLocked ends every command and fence awaiting an answer on the connection,
// which is gone for err; l.mu is held.
func (l *Listener) failWaitingLocked(err error) {
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
}

func (l *Listener) reconnect() {
	for attempt := 0; attempt < 1000; attempt++ {
		time.Sleep(reconnectDelay(attempt))
		l.mu.Lock()
		if l.closed || l.paused || len(l.subs) == 0 || l.conn != nil {
			l.mu.Unlock()
			return // Resume connects a paused listener
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.connectLocked(ctx) // which LISTENs again (connectedLocked)
		cancel()
		if err == nil {
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		if attempt%reconnectLogEvery == 0 { // not one line per 50 ms while the server is down
			l.log.Warn("listener reconnect failed", zap.Int("attempts", attempt+1), zap.Error(err))
		}
	}
}

// reconnectDelay is how long the listener waits before its reconnect attempt (from 0): 50
// ms for the first two seconds, then doubling from 100 ms to 10 s. A PostgreSQL that
// restarts is usually back within a second, and every notification committed between
// its return and the listener's LISTEN is missed (the clients' own pooled connections
// come back at once): with attempts at 100, 300, 700 ms that window was ~450 ms after a
// fast restart (bench/soak.sh's pgmux log). A refused connection costs next to nothing.
func reconnectDelay(attempt int) time.Duration {
	const fast, fastAttempts = 50 * time.Millisecond, 40
	if attempt < fastAttempts {
		return fast
	}
	return min(100*time.Millisecond<<min(attempt-fastAttempts, 7), 10*time.Second)
}

// reconnectLogEvery is how many failed reconnect attempts make one log line.
const reconnectLogEvery = 20
