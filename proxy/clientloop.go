package proxy

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// The client loop (issue 14, a first stage): a transaction-mode client waits for its next
// request in the parker's epoll set, not in a goroutine of its own, and the parker's
// goroutine reads the request and forwards it (dispatch, the same code as the session
// goroutine's) when that cannot block: every message of it whole in one read, none that
// pins the client or is answered by waiting (LISTEN, settings being re-applied), a server
// already linked or leased at once or queued for (pool.AcquireOrQueue: the server comes
// back through Handed, on the loop). Anything else resumes the session on a goroutine,
// which goes on as before and parks the client for the loop again once it has nothing
// buffered. The servers' answers are relayed by the loop too (clientloop_server.go).
//
// Nothing on the loop may wait: the checks above keep out what would (a lease that must
// dial or wait for a reserve, a direct connection for a pinning statement, settings being
// re-applied, a listening client's fence). What remains: locks held briefly by other
// goroutines (the session's, a server's write lock), and socket writes, which wait only
// when the peer's receive buffer is full — a client that stops reading while it keeps
// sending small requests can hold the loop up as long as that lasts.
//
// Owners: while a session is loop-parked or its request runs on the loop, the parker's
// goroutine is its session goroutine (the handover goes through the parker's lock or a
// go statement); loopWork belongs to whichever that is.

// loopMaxMessage bounds the messages the loop handles: a larger one is streamed by a
// goroutine rather than held whole.
const loopMaxMessage = 8 << 10

// loopState is the client loop's hold on a client, under the parker's lock.
type loopState uint8

const (
	loopOff       loopState = iota // a goroutine of its own serves it (or the idle parker)
	loopBusy                       // its request runs on the loop, or waits there for a server
	loopParked                     // it waits in the loop for its next request
	loopLoggingIn                  // it logs in on the loop (loginloop_linux.go)
)

// loopWork is the loop's state for a request waiting for a server.
//
// Its flags come first, together: with the pointers between them they took 19 bytes of
// padding, which fields now uses (the struct stays in its 176-byte size class).
type loopWork struct {
	on    bool // dispatch runs on the loop: lease must not block
	skip  bool // a goroutine taking over must drop messages up to Sync
	woken bool // a goroutine taking over acquires as a woken waiter (pool.ErrRetry)
	// readable: an edge of the client's socket came while its request ran on the loop.
	readable bool
	// peerGone: an event of the client's socket said its peer closed its side (FIN or
	// reset: EPOLLRDHUP, EPOLLHUP, EPOLLERR). A request waiting for a server is dropped
	// when it comes (gone.go); the session ends at its next read.
	peerGone bool
	conn     *pool.Conn // handed by the pool for the queued request
	err      error      // the queued wait's failure (timeout)
	start    time.Time  // when the queued request began to wait
	// at: the loop's clock reading for what it serves of the client in this wake-up
	// (parker.now); read by dispatch on the loop (on) and by parkOnLoop.
	at time.Time
	// lg: the client's login, while it runs on the loop (loginloop_linux.go).
	lg *loopLogin
	// fields: the split of the client's latest Parse or Bind (msgfields.go).
	fields msgFields
	// queued: the request waiting in the pool's queue, as dispatch left it.
	queued queuedReq
	// parse: the text of the client's latest Parse looked at on the loop and its Lead
	// (parseLead); nil until the first.
	parse *parseMemo
	// bufs: the serving loop's read buffers (parker.bufs), set where the loop takes the
	// client up (serveLoop, handed), nil off the loop.
	bufs *wire.BufStack
}

// queuedReq is a request queued for a server on the loop (dispatchServer): the message
// dispatch was at (seq: the reader's count of it, still unread) and what dispatch decided
// about it before it leased. When the server comes, runLoop goes on with the lease
// (dispatchServer) instead of dispatching the message from the start again: nothing of
// the session that those decisions read changes while it waits, as nothing else of the
// client is read meanwhile. Only the configuration may have changed (a RELOAD), which
// loopOK looks at again. A goroutine taking the request over (offLoop) dispatches it anew
// (its Next counts another message: seq no longer matches).
type queuedReq struct {
	seq     uint64
	typ     byte
	n       int
	pin     pinReason
	release bool
	pinErr  error
}

// resumable reports whether q is the request the reader is at: queued by dispatchServer
// on the loop and not read since.
func (q *queuedReq) resumable(rd *wire.Reader) bool { return q.typ != 0 && q.seq == rd.Seq() }

// lgState is the session's login on the loop while it runs, else nil.
func (s *Session) lgState() *loopLogin {
	if w := s.sessionWork; w != nil && w.lw != nil {
		return w.lw.lg
	}
	return nil
}

// saw notes what an event of the client's socket (its epoll mask ev) says: that its
// peer closed its side.
func (w *loopWork) saw(ev uint32) {
	if ev&goneEvents != 0 {
		w.peerGone = true
	}
}

// leftWhileQueued is leftWhileWaiting for a request that waited on the loop. The loop
// has seen every edge of the client's socket meanwhile: with none (the common case at a
// busy pool: a lease that waited, each transaction) nothing changed since the request
// was read, and no system call is made; an edge that said the peer left answers at
// once; only an edge of more bytes leaves it to poll the socket, which may hold a FIN
// behind them. A FIN still in the epoll set, not yet taken by the loop, is not seen:
// the request runs as on a direct connection, as PgBouncer runs it.
func (s *Session) leftWhileQueued() bool {
	return s.lw.peerGone || (s.lw.readable && s.leftWhileWaiting())
}

var (
	// errQueued: the request waits in the pool's queue; Handed continues it on the loop.
	errQueued = errors.New("queued for a server on the client loop")
	// errOffLoop: the request needs a goroutine (a dial, a health check, a reserve).
	errOffLoop = errors.New("request needs the session goroutine")
)

// loopOK reports whether the client may wait for its requests in the client loop.
func (s *Session) loopOK() bool {
	cfg := s.srv.Config()
	return cfg != nil && cfg.ClientLoop && s.canPark() && s.entry != nil && !s.listening && s.notes.Load() == nil &&
		!s.entry.multi.Load() && config.PoolMode(s.entry.modeNow.Load()) != config.PoolModeSession &&
		!s.kind.forced()
}

// loopPark hands the client to the loop to wait for its next request, from a goroutine
// of its own; false when it cannot (its socket was closed: the caller carries on and
// ends the session).
// rearm: called off the loop, so the descriptor's registration is made again and its
// readiness looked at; on the loop it is registered already, and an edge that came while
// the request ran is in lw.readable.
//
// A client whose loop is no longer where it belongs (Server.loopFor: the governor
// changed the active loops) moves here, when it has no server linked: its descriptor
// leaves the old loop's set and is registered in the new one's, which queues an event
// for what arrived meanwhile. It parks here from a goroutine, and from its loop when
// a request arrives there (serveLoop); only the session's owner (the loop serving it,
// or its goroutine) parks it, and ncMu keeps closeAndWake from looking at the loops
// halfway.
func (s *Session) loopPark(rearm bool) bool { return s.loopParkAt(rearm, time.Time{}) }

// loopParkAt is loopPark with the loop's clock reading at (zero: none).
func (s *Session) loopParkAt(rearm bool, at time.Time) bool {
	s.rd.Release()
	to, move := s.misplaced() // before ncMu: s.mu is not taken under it
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if s.ncEnd&ncClosed != 0 {
		return false
	}
	if at.IsZero() {
		at = time.Now()
	}
	s.idleSince = at.UnixNano()
	p := s.home()
	if move && p != nil {
		p.moveOut(s, s.fd)
		s.loopIdx.Store(to)
		p, rearm = s.home(), true
	}
	return p.loopPark(s, s.fd, rearm)
}

// misplaced returns the loop the client belongs on now (Server.loopFor) and whether it
// is to move there: it is on another and has no server linked. Called only by the
// session's owner, which alone changes loopIdx.
func (s *Session) misplaced() (to uint32, move bool) {
	to = s.srv.loopFor(s.id)
	return to, to != s.loopIdx.Load() && s.linkedServer() == nil
}

// parkOnLoop parks the client for its next request from the loop itself.
func (s *Session) parkOnLoop() {
	s.rd.ReleaseTo(s.lw.bufs) // loopParkAt's Release then finds nothing
	if !s.loopParkAt(false, s.lw.at) {
		s.offLoop() // closed meanwhile: the goroutine ends the session
	}
}

// offLoop moves the session from the loop to a goroutine of its own, which goes on with
// whatever is buffered.
func (s *Session) offLoop() {
	if s.lw != nil {
		s.lw.queued = queuedReq{} // the goroutine dispatches a queued request anew
		s.lw.bufs = nil
	}
	s.home().leaveLoop(s)
	s.toGoroutine()
	go s.resumeFromLoop()
}

// toGoroutine gives a client served on the loop from its bare socket the net.Conn a
// goroutine waits on (toRuntimeConn), before the loop hands the client to one: the loop
// reads and writes the bare socket without waiting, and a goroutine may have to wait.
// Only the loop serving the client calls it (the socket's owner): no read or write of
// the loop's can be under way on the descriptor. A failure leaves the bare socket, whose
// next wait fails as a closed connection does, and the session ends.
func (s *Session) toGoroutine() {
	if s.rawClient() {
		_ = s.toRuntimeConn()
	}
}

// serveLoop runs on the parker's goroutine when a loop-parked client's socket is
// readable; ev is the epoll event's mask, at the loop's clock reading.
func (s *Session) serveLoop(ev uint32, at time.Time, bufs *wire.BufStack) {
	if _, move := s.misplaced(); move {
		// The active loops changed (SetActiveLoops): the client moves to its place among
		// them and its request is served there; registering the descriptor anew reports
		// the bytes waiting (and the peer's end) to whichever loop it is in after.
		if !s.loopPark(true) {
			s.offLoop() // closed meanwhile: the goroutine ends the session
		}
		return
	}
	s.ensureWork()
	if s.lw == nil {
		s.lw = &loopWork{}
	}
	s.lw.saw(ev)
	s.lw.at, s.lw.bufs = at, bufs
	s.ownSettings()
	s.readLoop()
}

// readLoop reads what the client sent and dispatches it until the socket is drained
// (the descriptor is edge-triggered: a read that filled the buffer, or an edge seen while
// a request ran, means more may be there), then parks the client on the loop.
func (s *Session) readLoop() {
	for {
		more, err := s.rd.ReadNowWith(s.lw.bufs)
		if err == syscall.EAGAIN {
			if s.rd.Buffered() > 0 {
				s.offLoop() // a partial message: the goroutine waits for the rest
				return
			}
			break
		}
		if err != nil {
			s.endOnLoop(err) // as the relay ends on a failed read
			return
		}
		s.servedOnLoop()
		if !s.runLoop() {
			return
		}
		if !more && !s.lw.readable {
			break
		}
		s.lw.readable = false
	}
	s.parkOnLoop()
}

// runLoop dispatches the client's buffered messages on the loop while each can be; it
// reports whether all were (false: the session waits for a server, or went to a
// goroutine, or ended).
func (s *Session) runLoop() bool {
	checked := false // the session's part of loopable, looked at once a run (loopSession)
	for s.rd.Buffered() > 0 {
		if s.lw.queued.typ != 0 { // looked at in place: not a copy of it at every message
			q := s.lw.queued
			s.lw.queued = queuedReq{}
			if q.resumable(s.rd) && s.loopOK() {
				s.lw.on = true
				skipping, err := s.dispatchServer(q.typ, q.n, q.pin, q.release, q.pinErr, nil)
				s.lw.on = false
				if !s.afterDispatch(skipping, err) {
					return false
				}
				checked = false // the queued request's dispatch may have pinned
				continue
			}
		}
		typ, n, whole := s.rd.Whole()
		if whole && typ == 'X' {
			// Terminate: the session ends as the relay ends it (clientGone, retire, end),
			// on a goroutine of its own since ending may wait (a linked server's close,
			// the log); not through offLoop, whose goroutine is made for a request and
			// grows its stack to a login's first (resumeFromLoop): a client that
			// connects for one query and leaves (pgbench -C, serverless functions) paid
			// that at each connection. Its read buffer goes back to the pool here, on the
			// loop: what follows a Terminate means nothing, and held until the goroutine
			// ran, a storm of departures (an application's pool closing) took a 16 KB
			// buffer each from the pool at once (12 MB of heap for 2,000 clients,
			// resident until the next collection), where the loop now reuses one.
			s.terminatedOnLoop()
			return false
		}
		if !whole || (!checked && !s.loopSession()) || !s.loopable(typ, n) {
			s.offLoop()
			return false
		}
		checked = true
		if _, _, err := s.rd.Next(); err != nil {
			s.offLoop()
			return false
		}
		s.lw.on = true
		handled, err := s.forwardOnLink(typ, n)
		skipping := false
		if !handled {
			skipping, err = s.dispatch(typ, n)
		}
		s.lw.on = false
		if !s.afterDispatch(skipping, err) {
			return false
		}
	}
	return true
}

// afterDispatch carries on after dispatch ran a request on the loop: false when the loop
// is done with the client for now (queued, moved to a goroutine, ended).
func (s *Session) afterDispatch(skipping bool, err error) bool {
	switch {
	case err == errQueued:
		return false // Handed goes on
	case err == errOffLoop:
		s.offLoop()
		return false
	case err != nil:
		s.endOnLoop(err)
		return false
	case skipping:
		s.lw.skip = true
		s.offLoop()
		return false
	}
	return true
}

// loopSession is the part of loopable that looks at the session, not the message: runLoop
// asks it once for a run of buffered messages. What it reads does not change under a
// message dispatched on the loop: a message that would listen or pin is not loopable, and
// the client's loop, kind and socket stay as they are until it parks. A reload or a
// SUSPEND that lands during the run is seen by the next one, as one that lands just after
// a message's check is.
func (s *Session) loopSession() bool {
	if !s.loopOK() {
		return false
	}
	if s.srv.console.suspendedNow.Load() {
		return false // a linked client's request waits for RESUME (awaitResume)
	}
	return s.pinnedReasons() == 0
}

// loopable reports whether dispatch can handle the message, whole in the buffer, on the
// loop without blocking, once loopSession has said the session can.
func (s *Session) loopable(typ byte, n int) bool {
	if n > loopMaxMessage || len(s.deferred) > 0 {
		return false
	}
	if st := s.set.Load(); st != nil && st.out.Load() > 0 {
		return false // waits for settings being re-applied (awaitReapply)
	}
	switch typ {
	case 'P', 'B', 'D', 'C':
		if s.q.clears.Load() > 0 {
			// A lookup of a name waits for a clearing request's answer (applyClears),
			// which the loop itself may be the one to read: the goroutine's.
			return false
		}
	}
	if (typ == 'P' || typ == 'C' || typ == 'Q') && s.unnamed.full() {
		return false // may wait for the server's answers first (roomUnnamed)
	}
	switch typ {
	case 'E', 'S', 'C', 'H':
	case 'D':
		if s.unnamedDue() {
			return false // may wait for an earlier request's answer (settleUnnamed)
		}
	case 'B':
		// A Bind of a statement that pins (an advisory lock, a temporary table...) waits
		// for a direct connection (reserveDirect): the goroutine's.
		m, err := s.rd.Peek(n)
		if err != nil {
			return false
		}
		body := wire.Body(m)
		f := s.fieldsOf(body, s.rd.Seq()+1) // Next has not counted it yet
		if !f.OK() {
			return false
		}
		if name := f.Second(body); len(name) == 0 {
			if s.unnamedPin != 0 || s.unnamedDue() {
				return false
			}
		} else if def := s.lookupStmt(name); def != nil && def.pin != 0 {
			return false
		}
	case 'Q', 'P':
		m, err := s.rd.Peek(n)
		if err != nil {
			return false
		}
		body := wire.Body(m)
		var text []byte
		if typ == 'P' {
			var name []byte
			if f := s.fieldsOf(body, s.rd.Seq()+1); f.OK() { // Next has not counted it yet
				name, text = f.First(body), f.Second(body)
			} else if name, _, err = wire.CString(body); err != nil || len(name) == 0 {
				return false // no end to its name, or to an unnamed one's text
			}
			if len(name) != 0 {
				if def := s.lookupStmt(name); def != nil && def.unsure() {
					return false // its check may be unanswered: waited for (awaitProbe)
				}
				break // named: classified at its Bind
			}
		} else if text, _, err = wire.CString(body); err != nil {
			return false
		}
		if len(text) == 0 {
			break
		}
		// Next has not counted this message yet: its dispatch finds the answer kept.
		q := unsafe.String(&text[0], len(text))
		var l sqlscan.Lead
		if typ == 'P' {
			l = s.parseLead(q, s.rd.Seq()+1)
		} else {
			l = s.leadAt(q, s.rd.Seq()+1)
		}
		if !loopableText(l) {
			return false
		}
	default:
		return false
	}
	return true
}

// loopableText reports whether a statement text with lead l is handled without waiting:
// one that starts or ends a transaction, or one sqlscan finds nothing in.
func loopableText(l sqlscan.Lead) bool {
	if !l.Interesting {
		return true
	}
	return !l.More && l.Keyword >= sqlscan.KwBegin && l.Keyword <= sqlscan.KwRollback
}

// loopLease is lease on the loop: the server handed for a queued request, else an idle
// one at once, else a place in the pool's queue (errQueued), else errOffLoop.
func (s *Session) loopLease(cfg *config.Config, start time.Time) (*pool.Conn, error) {
	if c, err, ok := s.takeHanded(); ok {
		return c, err
	}
	c, queued := s.entry.pool.AcquireOrQueue(s, s, start, s.waitLimit(cfg))
	switch {
	case c != nil:
		return c, nil
	case queued:
		s.lw.start = start
		s.rd.ShrinkTo(s.lw.bufs) // as lease does: a queued request waits in a small buffer
		if s.lw.peerGone {
			// The edge that said the peer left came before the request queued (with the
			// request's bytes): none will come while it waits (gone.go).
			s.abandonWait()
		}
		return nil, errQueued
	}
	return nil, errOffLoop
}

// takeHanded returns what the pool handed the request queued on the loop: the server
// (nothing was sent on it: a client that left meanwhile gives it back, errLeftWaiting) or
// the wait's failure; ok is false when nothing came. The request may have moved to a
// goroutine since (a reload that turned the loops off or changed the pool mode: loopable
// refused it at handed), whose lease takes it here too: the server is leased to the
// session already and would otherwise stay so, unused.
func (s *Session) takeHanded() (c *pool.Conn, err error, ok bool) {
	if c = s.lw.conn; c != nil {
		s.lw.conn = nil
		if s.leftWhileQueued() {
			c.Release(false) // nothing was sent on it (gone.go)
			return nil, errLeftWaiting, true
		}
		return c, nil, true
	}
	if err = s.lw.err; err != nil {
		s.lw.err = nil
		return nil, err, true
	}
	return nil, nil, false
}

// dropHanded gives back a server handed for a queued request the session will not send
// (it ends, or refuses the request: a shutdown), and forgets a wait's failure.
func (s *Session) dropHanded() {
	if s.lw == nil {
		return
	}
	c := s.lw.conn
	s.lw.conn, s.lw.err = nil, nil
	if c != nil {
		c.Release(false) // nothing was sent on it
	}
}

// loopWaitStart is, while dispatch runs on the loop, when the request began to wait for a
// server: when it was queued, or this wake-up of the loop; zero off the loop.
func (s *Session) loopWaitStart() time.Time {
	if s.lw == nil || !s.lw.on {
		return time.Time{}
	}
	if s.lw.start.IsZero() {
		return s.lw.at // not queued: the request begins now, in this wake-up of the loop
	}
	return s.lw.start
}

// loopClock is the loop's clock reading while dispatch runs on the loop, else the time now.
func (s *Session) loopClock() time.Time {
	if s.lw != nil && s.lw.on && !s.lw.at.IsZero() {
		return s.lw.at
	}
	return time.Now()
}

// Handed is pool.Handoff's: the server a request queued on the loop waited for, or why
// none came. It runs on the releasing goroutine and only posts to the loop.
func (s *Session) Handed(c *pool.Conn, err error) { s.home().post(s, c, err) }

// handed continues a queued request on the loop with what the pool handed it, at the
// loop's clock reading.
func (s *Session) handed(c *pool.Conn, err error, at time.Time, bufs *wire.BufStack) {
	s.lw.at, s.lw.bufs = at, bufs
	switch {
	case c != nil:
		if !s.entry.pool.TakeHanded(c, s) {
			break // broken meanwhile: queue again
		}
		s.lw.conn = c
	case errors.Is(err, pool.ErrRetry):
		s.lw.start, s.lw.woken = time.Time{}, true
		s.offLoop() // the goroutine acquires the ordinary way (it may dial)
		return
	default:
		s.lw.err = err
	}
	if !s.runLoop() {
		return
	}
	s.lw.start = time.Time{}
	if s.lw.readable {
		s.lw.readable = false
		s.readLoop() // what came while it waited
		return
	}
	s.parkOnLoop()
}

// resumeFromLoop continues the session on a goroutine of its own, with whatever the loop
// left buffered; it parks the client for the loop again when it has nothing buffered.
func (s *Session) resumeFromLoop() {
	growLoginStack()
	s.lw.start = time.Time{}
	s.loop()
}

// idleFromLoop parks a client that stayed idle on the loop the ordinary way (park): its
// working state and net.Conn are given back. It runs on the loop (the sweep), which is
// the client's session goroutine meanwhile; one still inside a transaction goes back to
// the loop.
func (s *Session) idleFromLoop() {
	if s.linkedServer() == nil && s.park() {
		return
	}
	if s.loopOK() && s.loopPark(true) {
		return
	}
	s.ensureWork()
	s.toGoroutine()
	go s.loop()
}

// endOnLoop takes the session off the loop and ends it, as the relay ends on err: on the
// loop when nothing in the end can wait (endsAtOnce), else on a goroutine of its own (a
// linked server's release or close, a LISTEN's unsubscription). A goroutine per departure
// cost each client that leaves its creation, a stack and a wake-up, and a storm of
// departures (an application's pool closing, the end of a 5,000-client run) as many
// goroutines at once, queued on the loop's P ahead of the loop itself.
func (s *Session) endOnLoop(err error) {
	s.home().leaveLoop(s)
	if s.endsAtOnce() {
		s.endFromLoop(err)
		return
	}
	goroutineEnds.Add(1)
	go s.endFromLoop(err)
}

// goroutineEnds counts the sessions the loop ended on a goroutine of their own (tests).
var goroutineEnds atomic.Uint64

// endsAtOnce reports whether the session can end without waiting: no server linked, no
// LISTEN, no direct-pool slot (a server handed for a queued request goes back to the pool
// as it is: dropHanded). What is left (its counters folded, its cancel
// key forgotten, the log line, its socket's close) takes a lock or two and no I/O that
// waits, as a login's log line on the loop does.
func (s *Session) endsAtOnce() bool {
	if s.listening || s.kind != kindPooled || s.isAdmin() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server == nil && s.pinned == 0 && (s.sessionWork == nil || !s.holdsDirect)
}

// terminatedOnLoop ends the session of a client whose Terminate the loop has read. Its
// read buffer goes back to the pool first, on the loop: what follows a Terminate means
// nothing, and the loop reads the next departure into the same buffer.
func (s *Session) terminatedOnLoop() {
	s.rd.Drop()
	s.endOnLoop(nil)
}

// endFromLoop ends the session after a request on the loop failed the way the relay's
// failures end it.
func (s *Session) endFromLoop(err error) {
	s.clientGone()
	s.retire()
	s.end(err)
}
