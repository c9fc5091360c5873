package proxy

import (
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// sessionWork is a session's working state: its link to a server, the response queue,
// the client's statement names, pinning, reads on standbys, its counters. The Session
// embeds it by pointer, so s.Pending is s.sessionWork.book.Pending.
//
// An idle client needs none of it unless it made something that must outlive the park
// (a named or unnamed statement, read-your-writes position, an error it still has to
// see...): a client that parks holding nothing of its own gives it back (shed), its
// counters folded into its pool's totals, and is made a fresh one when it resumes
// (ensureWork). A parked client then costs the Session alone (bench/README.md).
//
// Owners: the session goroutine sets and clears the pointer, under Session.mu; while it
// is set, each field belongs to whom the Session's comment says. The console and the
// metrics, which may look at a parked client, read it under Session.mu and only when set.
type sessionWork struct {
	lw      *loopWork // the client loop's state, made when the loop first serves the client (clientloop.go)
	scan    scanMemo  // sqlscan.MaybeInteresting and FirstKeyword of the message being handled
	book              // the link's protocol bookkeeping: Pending, TxStatus... (link.Book)
	q       respQueue // the link's requests awaiting answers, beside the book (respq.go)
	stats   SessionStats
	ops     sessionOps // SHOW STATS / metrics counters (admin_stats.go)
	heldErr []byte     // a held error of pgmux's preparation before a Query (sqlmulti.go); under mu

	// lostLease is a server leased to the session that broke before serverFor linked it:
	// nothing was sent on it, and serverFor leases another. Guarded by mu.
	lostLease *pool.Conn

	// Prepared statements (see prepared.go); used by the session goroutine only.
	stmts  map[string]*stmtDef
	clears stmtClears // DISCARD ALL / DEALLOCATE ALL answers for stmts (stmtclear.go)
	// clearPortals: the client's portals whose Execute clears statement names, by
	// portal name (stmtclear_ext.go); session goroutine only.
	clearPortals map[string]clearOp
	deferred     []deferredOp
	unnamed      unnamedStmt // the client's unnamed statement (prepared.go)
	scratch      []byte

	box    *pool.LeaseBox // the session's box for its leases (Session.LeaseBox)
	limits timeLimits     // set at login and at each link; read under mu elsewhere

	// Session state in transaction mode (see sticky.go); the session goroutine's but
	// checkCount, the server's reader's.
	checkCount     int64
	pinSeq         uint32
	unnamedPin     pinReason
	holdsDirect    bool
	releaseSeen    bool
	unnamedRelease bool

	// Reads on standbys (replica.go). pick, rrNext, linkReplica, forcePrimary and rw
	// belong to the session goroutine; rr is the held request, read by the server's
	// reader; onReplica and rwDirtyAt are guarded by mu: rwDirtyAt is when the client's
	// last transaction on the primary of a multi-host database ended (set by the reader),
	// zero once a primary position read after it is known.
	linkReplica  bool
	forcePrimary bool
	onReplica    bool

	// Not the standbys': three flags of the link that fill the padding after the bools
	// above, which keeps sessionWork in its 576-byte size class (TestSessionSizeBounded).
	fo       foFlags // after a lost server of a multi-host database (failover.go)
	ddlSent  bool    // DDL sent in the current transaction (ddl.go)
	flushNow bool    // session goroutine: flush the server now (a clearing Query, stmtclear.go)
	// serverFatal: the linked server's own FATAL went to the client (onError), so when the
	// server's connection then ends the client is closed without a second one
	// (serverFailed). The server's reader's, under mu.
	serverFatal bool

	pick   *pool.Pool // the standbys' again
	rrNext *replicaReq
	// cancelAsked: a cancel request came for the request now waiting (ClientWaiting), its
	// wait ended by it or to be at once (cancelwait.go). Set under mu, cleared under mu as
	// the next wait begins (serverFor); atomic for the pool, which asks it (Withdrawn) on
	// the requester's goroutine.
	cancelAsked atomic.Bool
	// Read-only transactions on standbys (replica_move.go), the session goroutine's, in
	// cancelAsked's padding: roFresh, the BEGIN's modes while nothing else has run in the
	// transaction open on the linked standby; roMoved, those of the client's transaction
	// that left the standby, to be begun on its next server.
	roFresh, roMoved sqlscan.TxModes
	// cacheUnnamed is cache_unnamed_statements for the current link (unnamed.go), set as
	// each link begins; the session goroutine's. Here, in the padding, rather than in
	// Session: a parked client has no link.
	cacheUnnamed bool
	// reqTx is whether the client's Query being dispatched begins (txBegins) or ends
	// (txEnds) a transaction block, set by stickyNeed: the state check after a release
	// waits for the end of a block (releaseCheckNow). The session goroutine's.
	reqTx uint8
	// replicaWait is the standby's pool a replica read waits in (acquireReplica), for a
	// cancel request (cancelWait); under mu. Here rather than in Session: an idle
	// client's Session stays within its size class.
	replicaWait *pool.Pool
	rw          rwState
	rr          atomic.Pointer[replicaReq]
	rwDirtyAt   monoTime
}

// newWork is the working state of a client that has done nothing yet.
func newWork() *sessionWork { return &sessionWork{book: book{TxStatus: 'I'}} }

// freshWork is newWork with s's lease box.
func (s *Session) freshWork() *sessionWork {
	w := newWork()
	w.box = pool.NewLeaseBox(s)
	return w
}

// ensureWork gives the session goroutine its working state back after a park that shed
// it (the goroutine the parker starts runs it first).
func (s *Session) ensureWork() {
	if s.sessionWork != nil {
		return
	}
	w := s.freshWork()
	if s.rd != nil {
		w.unnamed.syncedAt(s.rd.Seq()) // a client parks between requests
	}
	s.mu.Lock()
	if k := s.kept; k != nil {
		w.unnamed.body, w.stmts, s.kept = k.unnamed, k.stmts, nil
	}
	if s.waitSince != 0 { // the latest request's start, kept by shed
		w.ops.qStart = -max(monoOf(time.Unix(0, s.waitSince)), 1) // (the wall clock may have gone back)
		s.waitSince = 0
	}
	s.sessionWork = w
	s.mu.Unlock()
}

// lastRequestLocked is when the client's latest request began (SHOW CLIENTS'
// request_time), from its working state or, while it has none, what shed kept of it
// (waitSince); the zero Time before its first. s.mu is held.
func (s *Session) lastRequestLocked() time.Time {
	if w := s.sessionWork; w != nil {
		return w.ops.lastRequest()
	}
	if s.waitSince != 0 {
		return time.Unix(0, s.waitSince)
	}
	return time.Time{}
}

// keptWork is what a session keeps of its working state while parked without it (shed):
// the body of its unnamed statement, which PostgreSQL keeps until the next Parse of the
// unnamed statement or a simple Query, and which drivers that parse unnamed statements leave behind after
// each request; and its named statements (pgx's, Postgrex's, JDBC's after a few runs of
// one). Guarded by Session.mu.
type keptWork struct {
	unnamed []byte
	stmts   map[string]*stmtDef
}

// ownsNothing reports whether w holds nothing a fresh one would not: no link or request
// in flight, no statement of the client's, no pin, failover or replica state. Its
// counters do not count (shed folds them into the pool's totals). s.mu is held.
func (w *sessionWork) ownsNothing() bool {
	return w.unnamed.idle() && !w.clears.probeDue && w.ownsRest(false)
}

// ownsNothingElse is ownsNothing but for the statements, which may be left: an unnamed
// one parsed in an earlier request and not pinning, releasing or clearing anything (its
// body alone), and named ones none of which awaits a check on the next server
// (probeDue): shed keeps them aside (keptWork). s.mu is held.
func (w *sessionWork) ownsNothingElse() bool {
	return w.unnamed.plain() && !w.clears.probeDue && w.ownsRest(true)
}

// ownsRest is ownsNothing's test of everything but the unnamed statement's body, and but
// the named statements when stmtsKept.
func (w *sessionWork) ownsRest(stmtsKept bool) bool {
	return w.Pending == 0 && !w.Unsynced && w.TxStatus == 'I' && w.fo == 0 && !w.ErrSkip &&
		!w.DropErr && !w.ddlSent && !w.flushNow && w.heldErr == nil && w.lostLease == nil &&
		w.q.len() == 0 && w.q.fakes.Load() == 0 && w.q.clears.Load() == 0 &&
		(stmtsKept || len(w.stmts) == 0) && w.clears.settled() && len(w.clearPortals) == 0 && len(w.deferred) == 0 &&
		w.unnamedPin == 0 && !w.unnamedRelease && !w.holdsDirect &&
		!w.releaseSeen && !w.linkReplica && !w.forcePrimary && !w.onReplica && w.pick == nil &&
		w.rrNext == nil && w.rr.Load() == nil && w.rw == (rwState{}) && w.rwDirtyAt == 0 && w.roMoved == 0 &&
		(w.lw == nil || w.lw.conn == nil && w.lw.err == nil)
}

// settled reports whether every clearing Query sent was answered and applied.
func (c *stmtClears) settled() bool {
	return c.sent == c.applied && c.done.Load() == c.applied && len(c.dropped) == 0 &&
		c.drops.Load() == c.dropsApplied
}

// shed gives back the working state of a session about to park, when it owns nothing
// (ownsNothing) and no server's reader can still be finishing an answer to it (none is
// inside Pump, and wmu is free). A listening client keeps
// it: notifications reach it while parked. The counters go to the pool's retired
// totals first, under the console's lock, so SHOW STATS and the metrics neither lose
// nor count them twice. Run by the session goroutine; a session that does not park
// after all gets a fresh one (ensureWork).
func (s *Session) shed() {
	w := s.sessionWork
	if w == nil || s.listening || !s.wmu.TryLock() {
		return
	}
	defer s.unlockW()
	var c *consoleState
	if s.entry != nil && s.srv.console != nil {
		c = s.srv.console
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil || s.pumps.Load() != 0 || s.pinned != 0 || s.state == ClientWaiting {
		return
	}
	s.unshareSettings()
	if !w.ownsNothingElse() {
		return
	}
	if c != nil && !w.ops.retired {
		if t := s.sessionTotals(); t != (totals{}) {
			c.retiredAcc(s.entry.key).add(&t)
		}
	}
	if body := w.unnamed.keep(); body != nil || len(w.stmts) > 0 {
		s.kept = &keptWork{unnamed: body, stmts: w.stmts}
	}
	// The latest request's start, for SHOW CLIENTS, in waitSince: unused while the
	// client waits for nothing, as a parked one does (ensureWork takes it back).
	s.waitSince = 0
	if t := w.ops.lastRequest(); !t.IsZero() {
		s.waitSince = t.UnixNano()
	}
	s.sessionWork = nil
}

// idle reports whether the client has no unnamed statement and nothing pending of one.
func (u *unnamedStmt) idle() bool { return len(u.body) == 0 && u.plain() }

// plain reports whether nothing is pending of the unnamed statement: at most its body is
// left, which a later request's Parse replaces.
func (u *unnamedStmt) plain() bool {
	return !u.live && !u.unflushed && u.def == nil && u.op() == (clearOp{})
}
