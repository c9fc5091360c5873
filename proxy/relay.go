package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// relay reads the client's messages and forwards them to a linked server, leasing one
// when the client starts a transaction. It returns when the client leaves, or parked when
// the client went idle and its socket was handed to the parker (see park_linux.go).
func (s *Session) relay() (parked bool, err error) {
	skipping := false // after a refused extended-protocol message: drop until Sync
	if s.lw != nil {
		skipping, s.lw.skip = s.lw.skip, false
	}
	s.ownSettings()
	for {
		typ, n, park, err := s.next(skipping)
		if park {
			return true, nil
		}
		if err != nil {
			if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrBadLength) {
				s.killWith(pgerr.Fatal(pgerr.ProtocolViolation, "%v", err))
			}
			return false, err
		}
		if !frontendMessage(typ) {
			s.killWith(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return false, fmt.Errorf("invalid frontend message type %d", typ)
		}
		if typ == 'X' {
			return false, nil
		}
		if skipping {
			if skipping, err = s.skipUntilSync(typ, n); err != nil {
				return false, err
			}
			continue
		}
		if s.srv.console.suspendedNow.Load() {
			if err := s.awaitResume(); err != nil { // suspend.go
				return false, err
			}
		}
		if skipping, err = s.dispatch(typ, n); err != nil {
			return false, err
		}
	}
}

// dispatch handles one client message after its header: answered by pgmux, refused, or
// forwarded to the linked server (leased first when none is). It reports whether
// messages up to the next Sync are to be dropped; an error ends the session.
func (s *Session) dispatch(typ byte, n int) (skipping bool, err error) {
	if testHookDispatch != nil {
		testHookDispatch(typ)
	}
	if s.onReplica && s.entry.multi.Load() {
		if done, skipping, err := s.inStandbyTx(typ, n); done {
			return skipping, err // replica_move.go
		}
	}
	if b := s.notes.Load(); b != nil {
		s.askFence(b, typ) // a listening client's request (listen_fence.go)
		if s.listening && s.mode != config.PoolModeSession {
			if err := s.trackUnlisten(b, typ, n); err != nil { // listen_tx.go
				return false, err
			}
			if err := s.noteSelfNotify(b, typ, n); err != nil { // listen_fence.go
				return false, err
			}
		}
	}
	if s.entry.multi.Load() {
		s.awaitReplicaUnlink(typ)
		// A multi-host database's client may have lost its server in a failover.
		handled, err := s.answerAborted(typ, n, false)
		if err != nil {
			return false, err
		}
		if handled {
			return false, nil
		}
	}
	if s.prep != prepPass {
		handled, err := s.deferLocal(typ, n)
		if err != nil {
			return false, err
		}
		if handled {
			return false, nil
		}
	}
	if typ == 'Q' && s.mode != config.PoolModeSession {
		handled, err := s.listenLocally(n)
		if err != nil {
			return false, err
		}
		if handled {
			return false, nil
		}
	}
	if st := s.set.Load(); st != nil && st.out.Load() > 0 {
		if c, err := s.awaitReapply(st); err != nil {
			return false, s.forwardFailed(c, err)
		}
	}
	pin, release, err := s.stickyNeed(typ, n)
	if err != nil {
		return false, err
	}
	var pinErr error
	if pin != 0 {
		pinErr = s.reserveDirect(pin)
	}
	if pinErr != nil && s.linkedServer() == nil {
		return s.refuse(typ, n, pinErr)
	}
	var rr *replicaReq
	if pin == 0 && s.entry.multi.Load() && s.linkedServer() == nil {
		if rr, err = s.routeRead(typ, n); err != nil {
			return false, err
		}
	}
	if typ == 'Q' && s.entry.multi.Load() {
		if err := s.noteCommitAhead(n); err != nil {
			return false, err
		}
	}
	return s.dispatchServer(typ, n, pin, release, pinErr, rr)
}

// dispatchServer is dispatch from the lease of a server on: what dispatch decided about
// the message before (pin, release, pinErr, rr) is kept, and a request queued on the
// client loop goes on from here when the pool hands it a server (clientloop.go
// queuedReq), without deciding it all again.
func (s *Session) dispatchServer(typ byte, n int, pin pinReason, release bool, pinErr error, rr *replicaReq) (skipping bool, err error) {
	c, err := s.serverFor(typ)
	if err == errQueued {
		if rr == nil {
			s.lw.queued = queuedReq{seq: s.rd.Seq(), typ: typ, n: n, pin: pin, release: release, pinErr: pinErr}
		}
		return false, err // Handed goes on (clientloop.go)
	}
	if err == errOffLoop {
		return false, err // the client loop carries on (clientloop.go)
	}
	if err == errLostMeanwhile {
		s.clearCommit()
		s.endRoute()
		_, err = s.answerAborted(typ, n, s.prep != prepPass) // deferLocal saw a Query
		return false, err
	}
	if err != nil {
		s.clearCommit()
		s.endRoute()
		if abandoned(err) {
			return false, err // the client left while waiting: nothing to answer (gone.go)
		}
		if s.srv.cutAtRelease() {
			s.killWith(shutdownFatal())
			return false, err
		}
		if errors.Is(err, pool.ErrClosed) && s.entry.removed.Load() {
			s.killWith(removedFatal(s.dbName)) // closeRemoved is about to; no error before it
			return false, err
		}
		return s.refuse(typ, n, err)
	}
	s.restoreListener()
	s.ops.in.Add(uint64(n + wire.HeaderLen))
	if err := s.forwardLocked(c, typ, n, pin, release, pinErr); err != nil {
		if s.entry.multi.Load() && s.lostServer(c, err) {
			return false, nil
		}
		return false, s.forwardFailed(c, err)
	}
	if rr != nil || s.rr.Load() != nil {
		return s.afterReplicaSend(typ)
	}
	return false, nil
}

// testHookDispatch, when a test sets it, is told of each message dispatch decides about.
var testHookDispatch func(typ byte)

// forwardLocked forwards one client message to c and flushes when the client has nothing
// more buffered, holding c's write lock when the server's reader may write to c too: a
// retry (retry.go) or a settings read-back (settings_link.go).
func (s *Session) forwardLocked(c *pool.Conn, typ byte, n int, pin pinReason, release bool, pinErr error) error {
	if st := linkOf(c); st != nil && (s.prep == prepCache || s.readsLater()) {
		st.wmu.Lock()
		defer st.wmu.Unlock()
	}
	if err := s.forwardSticky(c, typ, n, pin, release, pinErr); err != nil {
		return err
	}
	// A standby's link flushes at each request's end: the client's next request, already
	// buffered, waits for its answer (awaitReplicaUnlink).
	if s.rd.Buffered() == 0 || s.flushNow || s.onReplica && (typ == 'S' || typ == 'Q' || typ == 'F') {
		s.flushNow = false
		if err := c.Wr.Flush(); err != nil {
			return &flushError{we: &wire.WriteError{Err: err}}
		}
	}
	return nil
}

// next waits for the client's next message header. While the client is idle (no server
// linked, nothing buffered) it advertises since when in idleAt; the server's idle sweep
// may then kick it out of its read (a past read deadline) to park its socket or to end it
// at client_idle_timeout. The hot path pays two atomic operations.
func (s *Session) next(skipping bool) (typ byte, n int, park bool, err error) {
	if s.rd.Buffered() > 0 || skipping || len(s.deferred) > 0 {
		typ, n, err = s.rd.Next()
		return typ, n, false, err
	}
	if s.loopOK() && s.loopPark(true) {
		return 0, 0, true, nil // the client loop reads its next request (clientloop.go)
	}
	// A linked client advertises too: its link usually ends (the server's reader releases
	// it) while this goroutine already waits here. The sweep moves idleAt forward while the
	// link lasts and kicks only once it has ended.
	since := s.srv.clock.Load()
	for {
		s.idleAt.Store(since)
		typ, n, err = s.rd.Next()
		cur := s.idleAt.Swap(0)
		if cur >= 0 {
			return typ, n, false, err
		}
		since = -cur // kicked: the sweep left the idle start, negated
		// Kicked by the sweep: clear its deadline before anything else reads.
		s.mu.Lock()
		_ = s.nc.SetReadDeadline(time.Time{})
		s.mu.Unlock()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return typ, n, false, err
		}
		if s.clientIdle > 0 && time.Since(time.Unix(since, 0)) >= s.clientIdle {
			return 0, 0, false, s.idleTimedOut()
		}
		s.idleSince = time.Unix(since, 0).UnixNano()
		if s.canPark() && s.park() {
			return 0, 0, true, nil
		}
	}
}

// kickIfIdle is the sweep's part: it interrupts the read of a client idle long enough
// to be parked (park: parkDelay's answer for this sweep) or to time out. now is the
// sweep's clock.
func (s *Session) kickIfIdle(now int64, park time.Duration) {
	since := s.idleAt.Load()
	if since <= 0 {
		return
	}
	idle := time.Duration(now-since) * time.Second
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil {
		s.idleAt.CompareAndSwap(since, now) // busy or in a transaction: not idle yet
		return
	}
	// since is the clock's last tick before the client went idle, up to a sweep period
	// before that moment: a client found idle for one tick may have been idle for a
	// millisecond (at 5,000 clients on a pool of 20, hundreds are, between two requests,
	// at every sweep, and each park and resume costs more than a transaction). It parks
	// once it has surely been idle for park: a tick later.
	due := (s.canPark() && idle-sweepEvery >= park) || (s.clientIdle > 0 && idle >= s.clientIdle)
	if due && s.idleAt.CompareAndSwap(since, -since) {
		_ = s.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// idleTimedOut ends a client idle past client_idle_timeout.
func (s *Session) idleTimedOut() error {
	s.killWith(pgerr.Fatal(pgerr.IdleSessionTimeout,
		"terminating connection due to client_idle_timeout (%v idle)", s.clientIdle))
	return os.ErrDeadlineExceeded
}

func frontendMessage(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'H', 'F', 'd', 'c', 'f', 'X':
		return true
	}
	return false
}

// serverFor returns the linked server, leasing one first if needed, and accounts for the
// message about to be forwarded.
func (s *Session) serverFor(typ byte) (*pool.Conn, error) {
	s.mu.Lock()
	if c := s.server; c != nil {
		s.account(typ)
		s.mu.Unlock()
		return c, nil
	}
	if s.srv.cutAtRelease() {
		s.mu.Unlock()
		s.dropHanded()
		return nil, errShuttingDown
	}
	if s.fo&(foTell|foSkip) != 0 {
		// The failover state changed after dispatch looked at it (answerAborted): the
		// server was lost meanwhile, and this request is the client's next one.
		s.mu.Unlock()
		return nil, errLostMeanwhile
	}
	start := s.loopWaitStart()
	if start.IsZero() {
		start = time.Now()
	}
	if s.state != ClientWaiting && s.cancelAsked.Load() {
		s.cancelAsked.Store(false) // a new wait (not one continued from the client loop)
	}
	s.state, s.waitSince = ClientWaiting, start.UnixNano()
	s.loopWait = s.lw != nil && s.lw.on
	s.mu.Unlock()
	if hook := testHookWaitBegins.Load(); hook != nil {
		(*hook)(s)
	}

	cfg := s.srv.Config()
	var (
		c    *pool.Conn
		db   *config.Database
		mode config.PoolMode
		st   *serverState
	)
	defer func() {
		if st != nil {
			st.wmu.Unlock()
		}
	}()
	for {
		var err error
		if c, err = s.lease(cfg, start); err != nil {
			if err == errQueued || err == errOffLoop {
				// Waiting, on the client loop, or to go on waiting on the session goroutine
				// (clientloop.go): still counted waiting, and a cancel request for it kept.
				return nil, err
			}
			s.mu.Lock()
			if abandoned(err) {
				s.state = ClientClosed
			} else {
				s.state = ClientIdle
			}
			s.cancelAsked.Store(false) // the wait is over
			s.mu.Unlock()
			return nil, err
		}
		db, mode, _ = s.entry.snapshot()
		if prepModeFor(cfg, mode) == prepCache || mode != config.PoolModeSession {
			// The link's first writes (settings, deferred statements) hold the connection's
			// write lock like every later one (retry.go, settings_link.go).
			if linkOf(c) == nil {
				// A fresh connection's state is made under s.mu: the server's reader reads
				// Tracker under s.mu (onError), and may do so before this link is made (a
				// server's unsolicited error); the socket gives no happens-before edge.
				s.mu.Lock()
				st = stateOf(c, cfg.MaxPreparedStatements, s.entry.prep)
				s.mu.Unlock()
			} else {
				st = stateOf(c, cfg.MaxPreparedStatements, s.entry.prep)
			}
			st.wmu.Lock()
		}
		s.mu.Lock()
		if s.lostLease != c {
			break
		}
		// Its server ended it between the lease and now (serverFailed): nothing was sent.
		s.lostLease = nil
		s.mu.Unlock()
		if st != nil {
			st.wmu.Unlock()
			st = nil
		}
	}
	s.lostLease = nil
	if s.cancelAsked.Load() {
		// Canceled while it waited, after the last step of the wait that could have ended
		// it (cancelwait.go): nothing of the request was sent on c.
		s.state = ClientIdle
		s.cancelAsked.Store(false)
		s.mu.Unlock()
		if st != nil {
			st.wmu.Unlock()
			st = nil
		}
		s.rr.Store(nil) // a replica read's (acquireReplica)
		c.Release(false)
		return nil, errCanceledWaiting
	}
	waited := max(s.loopClock().Sub(start), 0)
	at := monoOf(start) + monoTime(waited) // the request's start (noteSend): no other reading
	s.stats.WaitTime += waited
	s.noteAcquire(waited)
	s.server = c
	s.LinkedFresh()
	s.unnamed.linkedAnew()
	s.onReplica = s.linkReplica
	s.mode = mode
	s.state = ClientActive
	s.q.reset()
	s.borrowRing(c)
	s.prep, s.maxStmts = prepModeFor(cfg, mode), int32(cfg.MaxPreparedStatements)
	s.cacheUnnamed = s.prep == prepCache && cfg.EffectiveCacheUnnamed(db)
	s.limits = timeLimits{query: cfg.QueryTimeout, idleTx: cfg.IdleTransactionTimeout, tx: cfg.TransactionTimeout}
	s.clientIdle = cfg.ClientIdleTimeout
	s.arm(timerTx, s.limits.tx)
	s.syncSettings(c)
	s.abortOnLink(c)
	s.beginOnLink(c) // replica_move.go
	if len(s.deferred) == 0 && !s.clears.probeDue {
		s.accountAt(typ, at)
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	if err := s.probeDeferred(c); err != nil {
		c.Discard(err)
		return nil, err
	}
	if err := s.replayDeferred(c); err != nil {
		c.Discard(err)
		return nil, err
	}
	s.mu.Lock()
	s.account(typ)
	s.mu.Unlock()
	return c, nil
}

// lease leases a server: a standby's for a replica read (replica.go), else an idle one at
// once, else waiting up to the wait limit (and, for a multi-host database without a
// primary, failover_timeout).
func (s *Session) lease(cfg *config.Config, start time.Time) (*pool.Conn, error) {
	if s.lw != nil {
		if s.lw.on {
			return s.loopLease(cfg, start)
		}
		if c, err, ok := s.takeHanded(); ok {
			return c, err // handed on the loop, then the request left it (takeHanded)
		}
	}
	if c, err := s.acquireReplica(cfg); c != nil || err != nil {
		return c, err
	}
	if c := s.entry.pool.TryAcquireAt(s, start); c != nil {
		return c, nil
	}
	if !s.entry.multi.Load() {
		// The request waits in a small buffer, not a 16 KB one: at thousands of clients on
		// a small pool nearly every client waits here (wire.Reader.Shrink). No view of the
		// reader's bytes outlives this call but a replica read's (replica.go), and those are
		// only routed for a database of several hosts.
		s.rd.Shrink()
	}
	var c *pool.Conn
	var err error
	if s.lw != nil && s.lw.woken {
		s.lw.woken = false // the loop's queued wait ended with room to dial (clientloop.go)
		c, err = s.entry.pool.AcquireWoken(s, start, s.waitLimit(cfg))
	} else {
		c, err = s.entry.pool.AcquireTimeout(s, start, s.waitLimit(cfg))
	}
	if err != nil && s.entry.multi.Load() && !abandoned(err) {
		c, err = s.acquireFailover(cfg, err)
	}
	if err == nil && s.leftWhileWaiting() {
		c.Release(false) // nothing was sent on it (gone.go)
		return nil, errLeftWaiting
	}
	return c, err
}

func prepModeFor(cfg *config.Config, mode config.PoolMode) prepMode {
	switch {
	case mode == config.PoolModeSession || cfg.MaxPreparedStatements == 0:
		return prepPass
	case cfg.PreparedStatementMode == "unnamed":
		return prepUnnamed
	}
	return prepCache
}

// forwardSticky forwards one client message, pinning the client first when the message
// creates session state, and following a request that may have released it with the
// state check.
func (s *Session) forwardSticky(c *pool.Conn, typ byte, n int, pin pinReason, release bool, pinErr error) error {
	if pinErr != nil {
		// A Bind is replaced by statements raising the error (raiseViaServer); only
		// without statement rewriting, where the Bind's answer is already expected,
		// does the client lose its connection instead.
		if typ != 'Q' && s.prep == prepPass {
			c.Discard(pinErr)
			s.killWith(pinErr.(*pgerr.Error))
			return pinErr
		}
		return s.raiseViaServer(c, typ, n, pinErr.(*pgerr.Error))
	}
	if pin != 0 {
		s.pin(c, pin)
	}
	if release {
		s.releaseSeen = true
	}
	copying := false
	if typ == 'Q' && s.releaseSeen {
		var err error
		if copying, err = s.queryCopies(n); err != nil {
			return err
		}
	}
	s.settingsBefore(typ)
	if err := s.closeLeft(c, typ); err != nil {
		return err
	}
	if err := s.forwardClient(c, typ, n); err != nil {
		return err
	}
	if err := s.settingsAfter(c, typ); err != nil {
		return err
	}
	// The state check waits for the end of a Query with a COPY: behind it, it would
	// reach the server in the COPY's copy-in (sqlmulti.go closeLeft). The client's next
	// Query sends it, or its next Sync that no Query sent before still awaits its answer
	// ahead of: a Sync in a copy-in, which PostgreSQL ignores, is not one.
	if s.releaseSeen && !copying && (typ == 'Q' || typ == 'S' && !s.queryAwaited()) && s.releaseCheckNow(typ) {
		s.releaseSeen = false
		if s.pinnedReasons() != 0 {
			return s.sendStateCheck(c)
		}
	}
	return nil
}

// queryAwaited reports whether a Query of the client's still awaits its answer (its
// ReadyForQuery): one whose COPY FROM STDIN may be taking the client's copy-in now.
func (s *Session) queryAwaited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	s.q.each(func(e expect) { found = found || e.Kind == 'Q' && !e.Hide })
	return found
}

func (s *Session) pinnedReasons() pinReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pinned
}

// forwardClient sends one client message to the server: statement messages through the
// name rewriting, simple queries through inspection, everything else byte for byte.
func (s *Session) forwardClient(c *pool.Conn, typ byte, n int) error {
	switch typ {
	case 'P', 'B', 'D', 'C':
		if s.prep != prepPass {
			return s.rewrite(c, typ, n) // rewriteParse frees a database a Parse needs
		}
		if typ == 'P' && n <= maxInspect { // a larger one streams through, as a Query does
			if err := s.freeDatabaseParse(n); err != nil {
				return err
			}
		}
	case 'Q':
		if n <= maxInspect {
			return s.forwardQuery(c, n)
		}
	}
	if typ == 'H' {
		s.flushAnswered()
	}
	if typ == 'E' && len(s.clearPortals) > 0 && s.prep != prepPass {
		if sent, err := s.executeClear(c, n); sent || err != nil {
			return err
		}
	}
	if l := s.linkLog(c); l != nil {
		if n <= 1<<10 && (typ == 'E' || typ == 'S' || typ == 'H') && l.Keeps(typ) {
			m, err := s.rd.Message(n)
			if err != nil {
				return err
			}
			l.Add(m)
			if err := c.Wr.Write(m); err != nil {
				return &wire.WriteError{Err: err}
			}
			return nil
		}
		l.Skip(typ)
	}
	return s.rd.Forward(c.Wr, n)
}

// account records what a forwarded message means for the link and which answers to
// expect; s.mu is held. Rewritten statement messages queue their own expectations.
func (s *Session) account(typ byte) { s.accountAt(typ, 0) }

// accountAt is account with the caller's clock reading (zero: none).
func (s *Session) accountAt(typ byte, now monoTime) {
	s.noteSend(typ, now)
	s.disarm(timerIdleTx)
	if s.SentClient(&s.q.ring, typ, s.prep == prepPass) { // plain requests: no count of q to publish
		s.arm(timerQuery, s.limits.query)
	}
	if (typ == 'Q' || typ == 'F') && s.fo&foCommit != 0 {
		s.fo |= foCommitSent // failover.go: its loss now ends the transaction
	}
	if typ == 'Q' && s.unnamed.stampQ {
		// A Query the server may skip: a skip is told with the unnamed statement's events.
		s.unnamed.stampQ = false
		if t := s.q.tail(); t != nil && t.Kind == 'Q' {
			t.Seq = s.unnamed.seq()
		}
	}
}

// refuse answers a message that could not get a server: an error, and ReadyForQuery at
// the end of the client's batch. It reports whether messages up to Sync are to be dropped.
func (s *Session) refuse(typ byte, n int, cause error) (bool, error) {
	if err := s.rd.Skip(n); err != nil {
		return false, err
	}
	s.deferred = s.deferred[:0]
	pe := acquireError(s, cause)
	s.srv.metrics.ErrorSent(pe.Code)
	s.log().Info("could not get a server connection", zap.Error(cause))
	b := pe.Append(nil)
	skipping := false
	switch typ {
	case 'Q', 'F', 'S':
		b = wire.ReadyForQuery(b, s.idleStatus())
	default:
		skipping = true
	}
	return skipping, s.writeClient(b)
}

// skipUntilSync drops extended-protocol messages after a refusal, answering the Sync.
func (s *Session) skipUntilSync(typ byte, n int) (bool, error) {
	if err := s.rd.Skip(n); err != nil {
		return true, err
	}
	if typ != 'S' {
		return true, nil
	}
	if b := s.notes.Load(); b != nil {
		b.reqOpen = false // the request ends here (listen_fence.go)
	}
	return false, s.writeClient(wire.ReadyForQuery(nil, s.idleStatus()))
}

func acquireError(s *Session, err error) *pgerr.Error {
	var pe *pgerr.Error
	if pe = serverLoginFailedIn(s.srv.Config(), err); pe != nil {
		pe.Severity = pgerr.SeverityError // the hint names where this configuration's password comes from
		return pe
	}
	switch {
	case errors.As(err, &pe):
		return pe.AtSeverity(pgerr.SeverityError)
	case errors.Is(err, pool.ErrWaitTimeout):
		if cf := s.entry.pool.ConnectFailure(); cf != nil {
			// No server came because none could be opened (the pool's connects keep
			// failing, server_login_retry holds them back), not because the pool stayed busy.
			return pgerr.New(pgerr.ConnectionFailure, "could not connect to the server for database %q: %v", s.dbName, cf).
				WithDetail("No server connection could be opened while the client waited; %v.", err)
		}
		st := s.entry.pool.Options()
		return pgerr.New(pgerr.QueryCanceled, "query_wait_timeout: no server connection became free for database %q, user %q", s.dbName, s.user).
			WithDetail("All %d server connections of the pool stayed busy; %v.", st.Size, err).
			WithHint("Raise default_pool_size or query_wait_timeout, or shorten transactions.")
	case errors.Is(err, errCanceledWaiting):
		return canceledError()
	case errors.Is(err, pool.ErrClosed):
		return pgerr.New(pgerr.CannotConnectNow, "database %q is being reconfigured or shut down", s.dbName)
	}
	return pgerr.New(pgerr.ConnectionFailure, "could not connect to the server for database %q: %v", s.dbName, err)
}

// serverError turns a login-time server failure into a FATAL for the client; cfg, the
// configuration in force, chooses the hint of a failed server login (serverLoginFailedIn).
// A failed server login is returned as a *serverLoginError, which the client's
// pgmux_client_login_failures_total counts as reason server_login, not protocol.
func serverError(cfg *config.Config, err error) error {
	if pe := serverLoginFailedIn(cfg, err); pe != nil {
		return &serverLoginError{pe}
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return pe.AtSeverity(pgerr.SeverityFatal)
	}
	if errors.Is(err, pool.ErrWaitTimeout) {
		return pgerr.Fatal(pgerr.CannotConnectNow, "timed out waiting for a server connection to log in: %v", err)
	}
	return pgerr.Fatal(pgerr.ConnectionFailure, "could not connect to the server: %v", err)
}

// serverLoginError is the FATAL a client gets when pgmux's own login to the server
// failed (serverLoginFailedIn); errors.As finds the *pgerr.Error in it.
type serverLoginError struct{ pe *pgerr.Error }

func (e *serverLoginError) Error() string { return e.pe.Error() }
func (e *serverLoginError) Unwrap() error { return e.pe }

// serverLoginFailed is serverLoginFailedIn without the configuration: its hint names
// both places a server password may come from.
func serverLoginFailed(err error) *pgerr.Error { return serverLoginFailedIn(nil, err) }

// serverLoginFailedIn turns a failure of pgmux's own login to the server (the password or
// SCRAM keys it uses for the server, the server's authentication method, TLS) into the
// FATAL a client sees, as PgBouncer does: 08P01 "server login failed: ...", so that the
// client's own credentials are not blamed, with a hint chosen by the cause
// (serverLoginHint). It returns nil for any other error: a server that cannot be reached,
// or one that refuses for a reason the client can act on (3D000, 57P03), whose error is
// relayed as is.
func serverLoginFailedIn(cfg *config.Config, err error) *pgerr.Error {
	if !errors.Is(err, pool.ErrServerLogin) {
		return nil
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) && !strings.HasPrefix(pe.Code, "28") {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), pool.ErrServerLogin.Error()+": ")
	if pe != nil {
		msg = pe.Message
	}
	return pgerr.Fatal(pgerr.ProtocolViolation, "server login failed: %s", msg).
		WithDetail("pgmux could not log in to PostgreSQL for this database and user; your own login to pgmux succeeded.").
		WithHint("%s", serverLoginHint(cfg, err, pe))
}

// serverLoginHint says where to look for a failed server login: the password pgmux uses
// (28P01, or a method it has no password for), PostgreSQL's pg_hba.conf and the role
// (another 28xxx), TLS, or otherwise the server's log. In zero-config mode (cfg from
// an upstream URL) the password and sslmode come from that URL; cfg nil names both.
func serverLoginHint(cfg *config.Config, err error, pe *pgerr.Error) string {
	var password, sslmode string
	switch {
	case cfg != nil && cfg.FromURL:
		password = "the password in the upstream URL (PGMUX_UPSTREAM, DATABASE_URL or --upstream)"
		sslmode = "sslmode (and sslrootcert) in the upstream URL (PGMUX_UPSTREAM, DATABASE_URL or --upstream)"
	case cfg != nil:
		password = "auth_file (userlist.txt), the [databases] password=, or auth_query's result"
		sslmode = "server_tls_sslmode (and server_tls_ca_file)"
	default:
		password = "auth_file (userlist.txt), the [databases] password=, auth_query's result, or in zero-config mode the password in the upstream URL (PGMUX_UPSTREAM / DATABASE_URL)"
		sslmode = "server_tls_sslmode (and server_tls_ca_file), or in zero-config mode sslmode in the upstream URL"
	}
	switch {
	case errors.Is(err, pool.ErrServerTLS):
		return "pgmux's TLS to PostgreSQL failed: check " + sslmode + " against the server's ssl setup."
	case pe != nil && pe.Code == pgerr.InvalidPassword:
		return "Check the server-side password pgmux uses: " + password + "."
	case pe != nil:
		return "PostgreSQL refused pgmux's login for this user and database: check the server's pg_hba.conf " +
			"(pgmux's address, the user, the database, SSL) and that the role may log in; the password pgmux uses is " + password + "."
	case errors.Is(err, pool.ErrServerAuthMethod):
		return "The server asks for an authentication method pgmux has no usable password for: set a plain password in " +
			password + ", or change the method in the server's pg_hba.conf."
	}
	return "See PostgreSQL's log for why it refused pgmux's login."
}

func waitContext(cfg *config.Config) (context.Context, context.CancelFunc) {
	if cfg.QueryWaitTimeout > 0 {
		return context.WithTimeout(context.Background(), cfg.QueryWaitTimeout)
	}
	return context.WithCancel(context.Background())
}

// forwardFailed handles an error while forwarding a client message: a failed write
// breaks the server (the reader goroutine then tells the client); a failed read means the
// client is gone.
func (s *Session) forwardFailed(c *pool.Conn, err error) error {
	var we *wire.WriteError
	if errors.As(err, &we) {
		c.Discard(err)
		s.killWith(pgerr.Fatal(pgerr.ConnectionFailure, "server connection failed while sending: %v", we.Err))
	}
	return err
}

// writeClient writes b to the client now; only while no server is linked. A listening
// client's notifications committed before its request come first (listen_fence.go).
func (s *Session) writeClient(b []byte) error {
	s.wmu.Lock()
	defer s.unlockW()
	s.awaitFence()
	if err := s.wr.Write(b); err != nil {
		return err
	}
	return s.wr.Flush()
}

// fatalLocked sends a FATAL error to the client and closes its connection; s.wmu is
// held, at a message boundary (the relay between two server messages): the FATAL goes
// out after what the writer holds. Any other goroutine ends a client with killWith.
func (s *Session) fatalLocked(pe *pgerr.Error) { s.fatalWithin(pe, time.Second) }

// fatalWithin is fatalLocked waiting at most wait for the client to take the FATAL.
func (s *Session) fatalWithin(pe *pgerr.Error, wait time.Duration) {
	s.closed.Store(true)
	s.tell(pe, wait)
	s.closeAndWake()
}

// clientGone ends the session's link when the client leaves: a clean server goes back to
// the pool (reset in session mode), one in the middle of something is closed.
func (s *Session) clientGone() {
	s.closed.Store(true)
	s.dropHanded()
	if s.listening {
		s.srv.listenerFor(s.entry).Unsubscribe(s, "")
	}
	s.mu.Lock()
	c := s.server
	clean := c != nil && s.Quiet(&s.q.ring) && s.TxStatus == 'I'
	// With only pgmux's settings queries outstanding (a read-back behind the client's last
	// request), the server's reader releases the server once they are answered (settle).
	finishing := c != nil && !clean && s.Pending == 0 && !s.Unsynced && s.pinned == 0 && s.q.onlySettings()
	if !finishing {
		s.server = nil
	}
	mode := s.mode
	s.state = ClientClosed
	s.disarmAll()
	pinned := s.pinned
	s.pinned = 0
	held := s.holdsDirect
	s.holdsDirect = false
	if c != nil && !finishing && s.needsRead() {
		if x := linkOf(c); x != nil {
			s.set.Load().forget(x) // left before its settings were read
		}
	}
	s.mu.Unlock()
	if held {
		s.entry.direct.release()
	}
	if c == nil || finishing {
		return
	}
	if pinned != 0 {
		// Session state stays on the server: reset it before anyone else gets it, or close.
		cfg := s.srv.Config()
		if clean && cfg.ServerResetQuery != "" && s.entry.pool.Reattach(c) {
			c.Release(true) // the reset query runs; the pool tells the server's state (serverState.ServerReset)
			return
		}
		c.Discard(io.ErrUnexpectedEOF)
		return
	}
	if clean {
		c.Release(mode == config.PoolModeSession || s.srv.Config().ServerResetQueryAlways)
		return
	}
	c.Discard(io.ErrUnexpectedEOF)
}

// Pump relays the server's messages to the client while c is leased to s. It runs on c's
// reader goroutine and returns nil once the lease has ended, or pool.ErrLoopReads at once
// when it hands c's reading to the client loop (which then relays for it).
func (s *Session) Pump(c *pool.Conn) error {
	if s.kind.replication() {
		return s.pumpReplication(c) // a server of its own, relayed unread (replication.go)
	}
	if s.pumpsOnLoop(c) && parkServer(c, s.home()) {
		return pool.ErrLoopReads // the loop reads it (clientloop_server.go); this reader ends
	}
	s.pumps.Add(1)
	defer s.pumps.Add(-1) // last: after every use of the session below
	if cfg := s.srv.Config(); cfg != nil && cfg.ClientLoop {
		s.flushLeft() // what the client loop could not send (clientloop_server.go)
	}
	// held: this lease's reader holds s.wmu. It is local because the reader of the
	// previous lease may still be letting go while this one starts.
	held := false
	defer func() {
		if held {
			s.unlockW()
		}
	}()
	rd := c.Rd
	busy := false // SUSPEND's hold found the client's side busy (holdAnswer)
	for {
		if held && s.q.fakes.Load() > 0 {
			s.answerFakes()
		}
		if rd.Buffered() == 0 && held {
			if s.wr.Buffered() > 0 {
				if err := s.wr.Flush(); err != nil {
					s.clientWriteFailed()
				}
			}
			if s.atBoundary() {
				held = false
				s.unlockW()
			}
		}
		var typ byte
		var n int
		var err error
		if rd.Buffered() == 0 {
			// Nothing of the server's left to relay, and what was relayed is flushed:
			// SUSPEND counts this reader suspended while it waits (relayQuiet).
			busy = false
			s.pumps.Add(pumpQuiet)
			typ, n, err = rd.Next()
			s.pumps.Add(-pumpQuiet)
		} else {
			typ, n, err = rd.Next()
		}
		if err != nil {
			if !held {
				s.wmu.Lock() // serverFailed may answer the client
				held = true
			}
			s.serverFailed(c, err)
			return err
		}
		if !s.leases(c) {
			return nil
		}
		waited := false // the lease may have ended meanwhile (leaseEnded)
		if s.srv.console.suspendedNow.Load() {
			busy = s.holdAnswer(held, busy) // suspend.go
			waited = true
		}
		if !held {
			s.wmu.Lock()
			held, waited = true, true
		}
		if waited && !s.leases(c) {
			return leaseEnded(rd, n)
		}
		if s.ending(c) {
			return nil
		}
		released, err := s.relayMsg(c, typ, n, time.Time{})
		if err != nil || released {
			return err
		}
	}
}

// leaseEnded drops the message of c's server whose header Pump read while c was leased
// to the session, when the lease ended while Pump waited (SUSPEND's hold, the client's
// writer held by a kill telling the client): it was that client's, who has left, and is
// dropped as forward drops a gone client's. c belongs to the pool or its next lessee
// now: it must neither get that message nor be closed for the kill (ending), and its
// next reader sees any failure of its own.
func leaseEnded(rd *wire.Reader, n int) error {
	_ = rd.Skip(n)
	return nil
}

// relayMsg relays one message of c's server whose header Next returned, with s.wmu
// held: for Pump on the reader goroutine (loopAt zero), or for the client loop (loopAt:
// its wake-up's time, evloop.Loop.Now; the client is not waited for: what its socket does
// not take stays in s.wr, clientloop_server.go).
// released: the link ended; err: c failed, and the client was told (serverFailed).
func (s *Session) relayMsg(c *pool.Conn, typ byte, n int, loopAt time.Time) (released bool, err error) {
	rd := c.Rd
	if s.q.fakes.Load() > 0 {
		s.answerFakes() // Parses answered by pgmux come before this message's answer
	}
	rr := s.rr.Load()
	if rr != nil && (rr.c != c || s.hiddenAhead(typ)) {
		rr = nil // not the held request's answer (replica.go)
	}
	if rr != nil {
		if err := s.holdStep(rr, c, typ, n); err != nil {
			s.serverFailed(c, err)
			return false, err
		}
	}
	switch typ {
	case 'Z':
		released, err := s.onReady(c, n, loopAt)
		if rr != nil && err == nil {
			s.holdDone(rr)
		}
		return released, err
	case 'S':
		err = s.onParameterStatus(c, n)
	case 'E':
		if rr != nil && rr.split {
			rr.sawErr = true // the rest is not to run (replica_split.go)
		}
		err = s.onError(c, n)
	case 'A':
		if s.sharedCopy(rd, n) {
			err = rd.Skip(n) // the shared listener delivers it (listen.go)
		} else {
			err = s.forward(rd, n)
		}
	case 'N':
		err = s.forward(rd, n)
	default:
		s.mu.Lock()
		hide, row := s.answer(c, typ)
		s.mu.Unlock()
		err = s.afterAnswer(rd, typ, n, hide, row)
	}
	if err != nil {
		s.serverFailed(c, err)
		return false, err
	}
	return false, nil
}

// afterAnswer relays, reads or skips a server message that answer matched (hide, row),
// as relayMsg does; the caller tells the client of an error (serverFailed).
func (s *Session) afterAnswer(rd *wire.Reader, typ byte, n int, hide bool, row int) error {
	if typ == 'C' && !hide {
		if u := s.unlistenTracked(); u != nil {
			if err := s.unlistenCC(u, rd, n); err != nil {
				return err
			}
		}
	}
	switch {
	case row == link.RowCheck && typ == 'D':
		return s.readCheckRow(rd, n)
	case row == link.RowSettings && typ == 'D':
		return s.readRow(rd, n)
	case row == link.RowClear && typ == 'C':
		return s.readClear(rd, n, hide)
	case row == link.RowHideCC && typ == 'C':
		return s.readCC(rd, n)
	case row == link.RowParams:
		return s.readParams(rd, n, hide)
	case hide:
		return rd.Skip(n)
	default:
		return s.forward(rd, n)
	}
}

// atBoundary reports whether the client has no answer outstanding, so a notification
// may go out between whole responses.
func (s *Session) atBoundary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Pending == 0 && s.q.len() == 0
}

// answer matches a server message of c to the request it answers, retiring requests
// that are complete (link.Queue.Answer), records on c's state what the
// answer confirms, and reports whether the client must not see it and whether pgmux
// reads it. s.mu is held.
func (s *Session) answer(c *pool.Conn, typ byte) (hide bool, row int) {
	if typ == 'D' && s.q.ring.PlainRow() {
		return false, 0 // Answer would do nothing with it
	}
	if typ == '3' && s.q.ring.Clears() > 0 {
		s.closeAnswered()
	}
	st := s.q.ring.Answer(typ)
	if st.Popped {
		s.q.publish()
	}
	if st.Checked && !st.Head.Reg.checked.Swap(true) {
		s.q.woken() // a Parse of its name may wait for it (awaitProbe)
	}
	if st.Prepared {
		prepared(c, st.Head)
	}
	if st.Synced {
		syncAnswered(c, st.Head)
	}
	if st.Shape {
		learnShape(st.Head, typ)
	}
	if st.Row == link.RowParams && st.Head.Def.desc.Load() != nil {
		return st.Hide, 0 // learned already: relayed unread
	}
	return st.Hide, st.Row
}

// prepared records that the server answered e's preparation of e.stmt. s.mu is held.
func prepared(c *pool.Conn, e answered) {
	if x := linkOf(c); x != nil {
		x.stmts.Answered(e.Stmt, e.Prep)
	}
}

// readCheckRow reads the state check's single count.
func (s *Session) readCheckRow(rd *wire.Reader, n int) error {
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	s.checkCount = -1
	body := wire.Body(m)
	if cols, rest, err := wire.Int16(body); err == nil && cols == 1 {
		if l, v, err := wire.Int32(rest); err == nil && l > 0 && int(l) <= len(v) {
			if x, err := strconv.ParseInt(string(v[:l]), 10, 64); err == nil {
				s.checkCount = x
			}
		}
	}
	return nil
}

// forward relays one server message; once the client is gone, output is dropped.
func (s *Session) forward(rd *wire.Reader, n int) error {
	if s.closed.Load() {
		return rd.Skip(n)
	}
	s.ops.out.Add(uint64(n + wire.HeaderLen))
	m := s.wr.Mark()
	err := rd.Forward(s.wr, n)
	// errors.AsType, not errors.As: As's target escapes, which would cost a heap
	// allocation for every relayed message even when err is nil.
	if _, ok := errors.AsType[*wire.WriteError](err); ok {
		s.clientWriteFailed()
		return nil
	}
	if err != nil && !s.wr.Rewind(m) {
		// The server broke inside the message and the client has its start: nothing
		// whole can follow (a FATAL's bytes would be read as the rest of it), so it is
		// closed untold, as a direct connection to a backend that died would be. Had
		// the start stayed in the writer, it would be dropped and the FATAL follow.
		s.clientWriteFailed()
	}
	return err
}

// relayRead relays m, a whole server message pgmux read, unless hide; once the client
// is gone, output is dropped.
func (s *Session) relayRead(m []byte, hide bool) {
	if hide || s.closed.Load() {
		return
	}
	s.ops.out.Add(uint64(len(m)))
	if err := s.wr.Write(m); err != nil {
		s.clientWriteFailed()
	}
}

func (s *Session) clientWriteFailed() {
	s.closed.Store(true)
	s.closeAndWake()
}

// onReady handles ReadyForQuery: the end of a hidden query, or of the client's request,
// where a transaction-mode link ends if nothing else is pending.
func (s *Session) onReady(c *pool.Conn, n int, loopAt time.Time) (bool, error) {
	onLoop := !loopAt.IsZero()
	m, err := c.Rd.Message(n)
	if err != nil {
		s.serverFailed(c, err)
		return false, err
	}
	if len(m) < 6 {
		err := fmt.Errorf("%w: short ReadyForQuery", wire.ErrMalformed)
		s.serverFailed(c, err)
		return false, err
	}
	status := m[5]
	s.mu.Lock()
	e := s.retireReady(c)
	if s.unnamed.waiting {
		s.q.woken() // a Bind or Describe of the unnamed statement waits for an answer (settleUnnamed)
	}
	if !e.Hide {
		s.DropErr, s.heldErr = false, nil
		s.ddlSettled(status)
	}
	if e.Check {
		return s.afterCheck(c, status, e.Seq)
	}
	if e.Setting == link.SetRead || e.Setting == link.SetReapply {
		// After the client's answer: the link may end here.
		if e.Setting == link.SetRead {
			if x := linkOf(c); x != nil {
				s.set.Load().commit(x, status, e.Seq)
			}
		} else if st := s.set.Load(); st != nil {
			retry := false
			if st.ReapplyFailed && status == 'I' && !st.reqErr {
				// The reset committed; only setting the startup value again failed.
				st.ResetStood = true
				if e.Val != "" && s.server == c {
					// Sent again before the client's next message (awaitReapply), which
					// counts as this one meanwhile: ParameterStatus stays held.
					st.retrySQL, retry = e.Val, true
				}
			}
			if !retry {
				if st.reapplying--; st.reapplying <= 0 {
					st.reapplying = 0
					s.reportChanged(c)
				}
				st.out.Store(int32(st.reapplying))
			}
			s.q.woken() // the session goroutine may wait for it (awaitReapply)
		}
		if s.server == c {
			s.TxStatus = status
		}
		return s.settleAt(c, status, loopAt)
	}
	if e.Settles {
		if s.server == c {
			s.TxStatus = status
		}
		return s.settleAt(c, status, loopAt)
	}
	if e.Hide {
		s.mu.Unlock()
		return false, nil
	}
	hideReady := s.server == c && s.splitHides(c, e, status)
	// Account for the answer before the client sees it: a client that leaves as soon as it
	// has its ReadyForQuery must find the link clean, or clientGone discards the server.
	if s.server == c {
		s.ReadyAnswered(status)
		s.fo &^= foCommitMarks
		if status == 'I' && !s.onReplica && s.entry.multi.Load() {
			// A transaction on the primary ended: the client's next replica read must
			// see it (replica.go). Marked before the client can see this answer.
			s.rwDirtyAt = monoNow()
		}
		if s.onReplica {
			s.q.woken() // a pipelined request may wait for this answer (awaitReplicaUnlink)
		}
		s.stats.Queries++
		if status == 'I' {
			s.stats.Transactions++
		}
		s.noteReady(status, loopAt)
	}
	var unlisten []unlistenAct
	if u := s.unlistenTracked(); u != nil && s.server == c {
		unlisten = u.ready(status, s.Quiet(&s.q.ring))
	}
	s.mu.Unlock()
	if !s.closed.Load() {
		if rr := s.rr.Load(); rr == nil || rr.c != c || rr.real == nil {
			s.askSelfFence(status)
			s.awaitFence() // not while a standby's answer is held to be dropped (replica.go)
		}
		if unlisten != nil {
			s.endSubscriptions(unlisten) // committed UNLISTENs (listen_tx.go)
		}
		var err error
		if !hideReady {
			err = s.wr.Write(m)
		}
		if err == nil {
			if onLoop {
				err = s.wr.TryFlush()
			} else {
				err = s.wr.Flush()
			}
		}
		if err != nil && err != syscall.EAGAIN { // EAGAIN: the loop's, left in s.wr
			s.clientWriteFailed()
		}
	}
	s.mu.Lock()
	return s.settleAt(c, status, loopAt)
}

// afterCheck ends pinning when the state check found nothing left on the server, then
// settles the link like any ReadyForQuery. s.mu is held and released on return.
func (s *Session) afterCheck(c *pool.Conn, status byte, seq uint32) (bool, error) {
	if s.server == c {
		s.TxStatus = status
		if status == 'I' && s.checkCount == 0 && s.unpinLocked(c, seq) {
			s.log().Debug("client unpinned: no session state left on its server")
		}
	}
	return s.settle(c, status)
}

// settle decides, with s.mu held (released on return), whether the link ends after a
// ReadyForQuery, and ends it.
func (s *Session) settle(c *pool.Conn, status byte) (bool, error) {
	return s.settleAt(c, status, time.Time{})
}

// settleAt is settle with the loop's clock reading at (zero: none, the release reads the
// clock).
func (s *Session) settleAt(c *pool.Conn, status byte, at time.Time) (bool, error) {
	if s.server != c {
		s.mu.Unlock()
		return false, nil
	}
	idle := s.Quiet(&s.q.ring)
	closed := s.closed.Load()
	if idle && status == 'I' && s.needsRead() {
		if closed {
			// The client left before its settings were read: the server's are unknown.
			if x := linkOf(c); x != nil {
				s.set.Load().forget(x)
			}
		} else if s.readsLater() {
			s.mu.Unlock()
			sent, err := s.readBack(c)
			if err != nil {
				s.serverFailed(c, err)
				return false, err
			}
			if sent {
				return false, nil
			}
			s.mu.Lock()
			if s.server != c {
				s.mu.Unlock()
				return false, nil
			}
			idle = s.Quiet(&s.q.ring)
			if idle && s.needsRead() {
				// The read-back could not go out (the session goroutine held the write
				// lock past lockWait): the server keeps values pgmux has not read, so it
				// is not released. The client's next request ends with the read-back,
				// or its departure marks the values unknown (clientGone).
				s.disarm(timerQuery)
				s.mu.Unlock()
				s.log().Debug("settings read-back deferred: the link is kept")
				return false, nil
			}
		}
	}
	// A RELOAD that moved the pool out of session mode takes effect at the client's next
	// transaction boundary: its server is reset and goes back to the pool (the next link
	// picks up the new mode).
	modeNow := s.mode
	if s.mode == config.PoolModeSession {
		modeNow = config.PoolMode(s.entry.modeNow.Load())
	}
	out, reset := link.End(link.State{Idle: idle, Status: status, Pinned: s.pinned != 0, Mode: s.mode,
		ModeNow: modeNow, Force: s.kind.forced(), Closed: closed})
	if out != link.Keep {
		s.server = nil
		s.state = ClientIdle
		s.disarmAll()
		if out == link.Release {
			s.returnRing(c)
		}
	} else if idle {
		s.disarm(timerQuery)
		if status != 'I' {
			s.arm(timerIdleTx, s.limits.idleTx)
		}
	}
	s.mu.Unlock()
	switch out {
	case link.Release:
		c.ReleaseAt(reset || s.srv.Config().ServerResetQueryAlways, at)
		if !closed && s.srv.cutAtRelease() {
			s.fatalLocked(shutdownFatal()) // safe shutdown: its server is back, so it goes
		}
		return true, nil
	case link.BadStatement:
		c.Discard(errors.New("transaction in statement mode"))
		s.fatalLocked(pgerr.Fatal(pgerr.ProtocolViolation, "transaction blocks not allowed in statement pooling mode")) // PgBouncer's disconnect_client code
		return true, nil
	case link.DirtyClosed:
		c.Discard(errors.New("client left inside a transaction"))
		return true, nil
	}
	return false, nil
}

// borrowRing takes c's response-queue buffer for the link (serverState.ring); the
// queue is empty, and a buffer of the client's own is dropped. s.mu is held.
func (s *Session) borrowRing(c *pool.Conn) {
	if x := linkOf(c); x != nil && x.ring != nil {
		s.q.ring.Swap(x.ring)
		x.ring = nil
	}
}

// returnRing gives the empty response queue's buffer to c at the link's release, for
// its next lessee. s.mu is held.
func (s *Session) returnRing(c *pool.Conn) {
	if x := linkOf(c); x != nil && x.ring == nil && s.q.ring.Len() == 0 {
		x.ring = s.q.ring.Swap(nil)
	}
}

// retireReady retires the request a ReadyForQuery answers (Sync, Query or FunctionCall)
// and returns it; requests before it that got no answer were skipped by the server after
// an error. s.mu is held.
func (s *Session) retireReady(c *pool.Conn) expect {
	st := linkOf(c)
	var run eventRun
	e := s.q.ring.RetireReady(func(e expect) {
		forgetSkipped(st, e)
		run.add(&e)
	})
	s.q.publish()
	if run.first != 0 {
		s.unnamed.reportSkipped(run.first, run.last)
	}
	return e
}

// serverFailed tells a linked client that its server connection broke, and closes it:
// its transaction, if any, is gone.
func (s *Session) serverFailed(c *pool.Conn, err error) {
	c.NoteBroken() // before the client hears of it and sends its next request
	s.holdLost(c)
	s.mu.Lock()
	if s.server != c && c.Lessee() == pool.Lessee(s) {
		// Leased and not linked yet: serverFor sends nothing on it and leases another.
		s.lostLease = c
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	end := s.endWith.Load()
	if end == nil && s.entry.multi.Load() && s.recoverLink(c, err) {
		return
	}
	s.mu.Lock()
	linked := s.server == c
	told := linked && s.serverFatal
	s.q.woken() // a session goroutine waiting for a clearing Query's answer (stmtclear.go)
	if linked {
		s.serverFatal = false
		s.server = nil
		s.Pending, s.Unsynced = 0, false
		s.state = ClientIdle
		s.pinned = 0 // the session state died with the server; the slot is freed on close
		s.disarmAll()
	}
	s.mu.Unlock()
	if linked && !s.closed.Load() && end != nil {
		s.fatalLocked(end) // its server was closed to end the session (killWith)
		return
	}
	if told && !s.closed.Load() {
		// The server's FATAL (a shutdown, pg_terminate_backend) reached the client, which
		// PostgreSQL follows by closing the connection: so does pgmux, without a second
		// FATAL of its own after it, so the client sees what a direct connection shows.
		s.log().Info("server ended the session with a FATAL error; the client is closed", zap.Error(err))
		s.closed.Store(true)
		if s.wr.Buffered() > 0 {
			_ = s.wr.Flush()
		}
		s.closeAndWake()
		return
	}
	if linked && !s.closed.Load() {
		s.log().Warn("server connection lost while serving client", zap.Error(err))
		s.fatalLocked(pgerr.Fatal(pgerr.ConnectionFailure, "server closed the connection unexpectedly").
			WithDetail("%v", err).
			WithHint("The server may have been restarted or the backend terminated; reconnect and retry."))
	}
}

// onError relays an ErrorResponse: what it does is decided without I/O by
// link.ErrorRule, from the request it answers; this carries it out. In the extended
// protocol the server then skips every request up to the next Sync, so their
// expectations are retired here, and statements whose Parse never ran are forgotten. An
// error of pgmux's own queries is logged, not shown.
func (s *Session) onError(c *pool.Conn, n int) error {
	m, err := c.Rd.Message(n)
	if err != nil {
		return err
	}
	if s.entry.multi.Load() {
		if fatal := s.fatalFromServer(m); fatal != nil {
			return fatal // the server is ending the connection: the client is kept (failover.go)
		}
	}
	staleCode, gone := link.PlanChanged(m), lookupFailed(m)
	// Under s.mu: the session goroutine sets a fresh connection's Tracker before it
	// takes s.mu to link it, and the socket alone is no happens-before edge.
	s.mu.Lock()
	st := linkOf(c)
	s.mu.Unlock()
	locked := false
	if staleCode && st != nil && s.prep == prepCache {
		s.mu.Lock()
		head, ok := s.q.peek()
		s.mu.Unlock()
		locked = ok && head.Def != nil && lockBriefly(&st.wmu)
	}
	if staleCode || gone {
		s.srv.stmtEpoch.Add(1) // statements the client prepares from now on are new (ddl.go)
	}
	u := s.unlistenTracked()
	s.mu.Lock()
	head, ok := s.q.peek()
	if u != nil && (!ok || !head.Hide) {
		u.unlistenFailed() // the client's request failed (listen_tx.go); u.mu nests in s.mu, as in onReady
	}
	f := link.ErrFacts[stmtDef, errFix, clearDrop]{Head: head, Queued: ok, DropErr: s.DropErr,
		Held: s.heldErr != nil, Known: st != nil, StaleCode: staleCode, Gone: gone}
	if head.Def != nil {
		f.DefName = head.Def.name
	}
	f.RegChecked = head.Reg != nil && head.Reg.checked.Load()
	if head.Reg != nil && head.Hide && !f.RegChecked {
		f.Rejected = link.ParseRejected(link.ErrCode(m))
	}
	r := link.ErrorRule(f)
	if set := s.set.Load(); set != nil && r.ReqErr {
		set.reqErr = true
	}
	s.DropErr = r.DropErr
	if r.CheckFailed {
		s.checkCount = -1
	}
	switch {
	case r.Hold:
		s.heldErr = append([]byte(nil), m...) // a copy: m is the reader's buffer
	case r.UseHeld:
		if pe, _ := pgerr.Parse(wire.Body(m)); pe != nil && pe.Code == pgerr.UndefinedPreparedStmt {
			m = s.heldErr // the client's EXECUTE of the statement pgmux could not prepare
		}
		s.heldErr = nil
	}
	if r.RegFailed {
		head.Reg.failed.Store(true)
	}
	if r.UnnamedFailed {
		s.unnamed.failed.Store(head.Seq)
	}
	if head.Probe {
		s.q.woken() // answered: a Parse of its name may wait for it (awaitProbe)
	}
	switch {
	case r.ForgetStmt:
		st.stmts.forget(head.Stmt, head.Prep)
	case r.StaleStmt:
		st.stmts.MarkStale(head.Stmt)
	}
	var pe *pgerr.Error
	if r.Refused {
		pe, _ = pgerr.Parse(wire.Body(m))
		s.settingsRefused(c, head, pe)
	}
	if r.Rename {
		m = (&errFix{from: head.Stmt, to: r.RenameTo}).apply(m)
	}
	m = head.Fix.apply(m)
	if ok {
		if t := s.translatedPlanError(m, head); t != nil {
			m = t
		}
	}
	var retry []byte
	if r.Skip {
		first, last := s.skipToSync(st, staleCode, gone, r.UnnamedFailed)
		if locked {
			retry = s.planRetry(st)
		}
		if first != 0 && retry == nil {
			s.unnamed.reportSkipped(first, last)
		}
	}
	s.mu.Unlock()
	if retry != nil {
		s.log().Debug("statement's result type changed: prepared it again and retried the request")
		err := c.Wr.Write(retry)
		if err == nil {
			err = c.Wr.Flush()
		}
		st.wmu.Unlock()
		return err
	}
	if locked {
		st.wmu.Unlock()
	}
	switch r.Report {
	case link.ReportQuiet:
		return nil // the client's EXECUTE after its hidden PREPARE failed
	case link.ReportSetting:
		s.logRefused(head, pe)
		return nil
	case link.ReportOwn:
		pe, _ := pgerr.Parse(wire.Body(m))
		if pe == nil || pe.Message != abortMessage { // failover.go's abortSQL did its job
			s.log().Warn("pgmux's own query failed on a server", zap.Error(pe))
		}
		return nil
	}
	if r.Hold {
		return nil
	}
	if s.closed.Load() {
		return nil
	}
	if fatalSeverity(wire.Body(m)) {
		s.mu.Lock()
		if s.server == c {
			s.serverFatal = true // the server is ending the session, and has said so
		}
		s.mu.Unlock()
	}
	s.noteError(m)
	if err := s.wr.Write(m); err != nil {
		s.clientWriteFailed()
	}
	return nil
}

// skipToSync retires the extended-protocol requests the server will skip after an error,
// and returns the run of the client's unnamed-statement events among them (numbers, 0
// when none). After the failed Parse of the client's unnamed statement (unnamedGone),
// those leave it none too; otherwise they changed nothing, which the caller tells
// (unnamedStmt.reportSkipped) unless the request is retried. s.mu is held.
func (s *Session) skipToSync(st *serverState, staleCode, gone, unnamedGone bool) (first, last uint16) {
	var run eventRun
	record := staleCode && st != nil
	if record {
		st.skipped = st.skipped[:0]
	}
	s.ErrorSkips(&s.q.ring, func(e expect, head bool) {
		if record {
			st.skipped = append(st.skipped, e) // for planRetry
		}
		if st != nil && head && (e.Kind == 'B' || e.Kind == 'D') && e.Stmt != "" && (staleCode || gone) {
			st.stmts.MarkStale(e.Stmt) // cached plan changed result type: prepare anew
		}
		forgetSkipped(st, e)
		run.add(&e)
	})
	s.q.publish()
	if unnamedGone && run.last != 0 {
		s.unnamed.failed.Store(uint32(run.last))
		return 0, 0
	}
	return run.first, run.last
}
