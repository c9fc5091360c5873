package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// Reads on standbys (replica_reads). When a client of a multi-host database that is
// pooled per transaction or statement starts something new (no server linked), routeRead
// decides where it goes:
//
//   - explicit and auto: a transaction that declares itself read-only (BEGIN READ ONLY,
//     START TRANSACTION READ ONLY, or a plain BEGIN while the client's
//     default_transaction_read_only is on, which SET SESSION CHARACTERISTICS AS
//     TRANSACTION READ ONLY also sets), and any single request of such a client, go to a
//     standby; a write there fails with 25006 as it would on the primary. A request that
//     goes on after ending such a transaction, or that has not fully arrived, goes to the
//     primary, and one pipelined behind it waits for its answer (replica_tx.go). So does
//     one that may switch to read-write (sqlscan.PrimaryOnly: BEGIN or SET
//     TRANSACTION ... READ WRITE, SET or RESET of transaction_read_only or
//     default_transaction_read_only, RESET ALL, DISCARD ALL...): on the primary what follows
//     the switch may write, where a standby refuses the switch (0A000) or the write.
//     Inside such a transaction open on a standby, a request that ends it and goes on is
//     split at the end, the rest routed anew (replica_split.go), and one that may switch
//     it to read-write while only its BEGIN ran moves it to the primary (replica_move.go).
//   - auto also sends a request outside a transaction whose statements the lexer proves
//     read-only (sqlscan.ReadOnly): a simple Query whose statements all are, or an
//     extended-protocol request whose whole batch up to Sync is already buffered and
//     whose executed statements all are. The standby's answer is held back from the
//     client until it shows data or ends; a 25006 error before that (a SELECT calling a
//     function that writes) makes pgmux send the request to the primary instead, and the
//     client sees only the primary's answer.
//
// Standby choice (pickStandby): among standbys that are reachable and whose replay lag
// is known and at most replica_max_lag, those that have already replayed the client's
// last commit come first; then the fewest server connections in use on it for this
// pool; then the lowest lag; then configuration order. No standby fits: the primary.
//
// Read-your-writes: a client whose transaction on the primary ends is marked (rwDirtyAt,
// before the client can see the ReadyForQuery). Its next replica read first learns a
// primary WAL position read after that moment: the one the hosts' checker read, when its
// last check of the primary began after the mark (pool.Cluster.PrimaryLSNAfter; no round
// trip), else one read for it (pool.Cluster.PrimaryLSN, one read shared by every client
// asking at the time); then it reads from a standby that has replayed it,
// waiting up to replica_max_wait (pool.Host.WaitReplay: one poller per standby, only
// while someone waits); past that, the read goes to the primary. The fetch is lazy: a
// client that writes and never reads from a standby pays nothing on its write path;
// the price is one primary round trip, shared, on its first replica read after a write.

// replicaReq is a request sent to a standby whose answer is held back until it is safe
// to show (see above). The session goroutine makes it and waits for done; the standby
// connection's reader (Pump) fills it while holding the client's write lock.
type replicaReq struct {
	c    *pool.Conn
	raw  []byte // the client's messages as it sent them, for a retry on the primary
	done chan bool
	// Pump's side, under s.wmu.
	holding bool
	retry   bool
	real    *wire.Writer // the client's writer while held
	held    bytes.Buffer
	hold    *wire.Writer // writes into held
	start   time.Time
	// For the head of a request split at its transaction's end (replica_split.go): the
	// client's Sync is still to come (open); on Pump's side, an error came in its answer
	// (sawErr, under s.wmu), it ended the transaction without one (splitEnded).
	split      bool
	open       bool
	sawErr     bool
	splitEnded atomic.Bool
}

// rwState is a session's read-your-writes state, owned by the session goroutine except
// dirty, which the server's reader sets.
type rwState struct {
	lsn uint64 // the primary's position the client's reads must see
}

// replicaOn returns the database's replica settings when the client may read from
// standbys now, with its cluster.
func (s *Session) replicaOn() (config.Replica, *pool.Cluster, bool) {
	if s.forcePrimary || s.roMoved != 0 || s.kind.forced() || s.mode == config.PoolModeSession {
		return config.Replica{}, nil, false
	}
	cfg := s.srv.Config()
	db, _, _ := s.entry.snapshot()
	r := cfg.EffectiveReplica(db)
	if r.Reads == "off" {
		return r, nil, false
	}
	cl := s.srv.pools.hosts.forDB(db)
	return r, cl, cl != nil
}

// routeRead decides, before a server is linked, whether the request starting with this
// message goes to a standby, and if so picks one (waiting for read-your-writes) and sets
// s.pick for serverFor. It returns the held request when the answer is to be held back.
func (s *Session) routeRead(typ byte, n int) (*replicaReq, error) {
	s.pick, s.roFresh = nil, 0
	r, cl, ok := s.replicaOn()
	if !ok {
		return nil, nil
	}
	s.mu.Lock()
	inTx, fo, defaultRO := s.TxStatus != 'I', s.fo, false
	if v, ok := s.params.Get("default_transaction_read_only"); ok && v == "on" {
		defaultRO = true
	}
	s.mu.Unlock()
	if inTx || fo != 0 {
		return nil, nil
	}
	var hold bool
	var raw []byte
	switch typ {
	case 'Q':
		if n > maxInspect {
			return nil, nil
		}
		m, err := s.rd.Peek(n)
		if err != nil {
			return nil, err
		}
		sql := cString(wire.Body(m))
		begin, access := sqlscan.BeginAccess(sql)
		switch {
		case begin && (access == sqlscan.AccessReadOnly || access == sqlscan.AccessUnsaid && defaultRO):
			if moreAfterEnd(sql) || sqlscan.PrimaryOnly(sql) {
				return nil, nil // statements after the read-only transaction: the primary's
			}
			s.noteBegin(sql, false) // replica_move.go
		case defaultRO && !begin:
			if sqlscan.PrimaryOnly(sql) {
				return nil, nil // it may go on read-write: the primary's
			}
		case r.Reads == "auto" && !begin && sqlscan.ReadOnly(sql):
			hold, raw = true, bytes.Clone(m)
		default:
			return nil, nil
		}
	case 'P', 'B', 'D':
		if q, ok := s.firstQuery(typ, n); ok {
			if begin, access := sqlscan.BeginAccess(q); begin {
				if access == sqlscan.AccessReadOnly || access == sqlscan.AccessUnsaid && defaultRO {
					if !s.roTxRequestFits() {
						return nil, nil // more after its end, or not all here: the primary's
					}
					s.noteBegin(q, true)
					break // a read-only transaction (JDBC, Npgsql send BEGIN so)
				}
				return nil, nil
			}
		}
		if r.Reads != "auto" && !defaultRO {
			return nil, nil
		}
		b, ok := s.readOnlyBatch(defaultRO)
		if !ok {
			return nil, nil
		}
		if b.exec && !defaultRO {
			if !b.retryable || len(s.deferred) > 0 {
				return nil, nil // a 25006 could not be retried: the primary
			}
			hold, raw = true, bytes.Clone(b.raw)
		}
	default:
		return nil, nil
	}
	p, err := s.pickStandby(cl, r)
	if err != nil || p == nil {
		s.srv.metrics.ReplicaPrimary(s.dbName, "no_standby")
		return nil, err
	}
	s.pick = p
	if !hold {
		return nil, nil
	}
	rr := &replicaReq{raw: raw, done: make(chan bool, 1), holding: true}
	rr.hold = wire.NewWriter(&rr.held)
	s.rrNext = rr
	return rr, nil
}

// cString is a NUL-terminated string's text.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// batch is what readOnlyBatch found in the client's buffered extended-protocol request.
type batch struct {
	raw       []byte // the request's messages through its Sync
	exec      bool   // it has an Execute
	retryable bool   // it can be sent again as is: no named Parse, no Close
}

// readOnlyBatch looks at the client's request from the current message through its Sync,
// which must already be buffered, and reports whether every statement it parses or binds
// is proven read-only (with anyStmt, for a client whose transactions are read-only by
// default: known not to switch to read-write, sqlscan.PrimaryOnly).
func (s *Session) readOnlyBatch(anyStmt bool) (batch, bool) {
	var b batch
	for _, op := range s.deferred {
		if op.typ == 'P' && (op.def == nil || !stmtFits(op.def.query, anyStmt)) {
			return b, false // parsed by the client before, answered by pgmux
		}
	}
	buf := s.rd.Window()
	b.retryable = true
	parsed := map[string]string{}
	for off := 0; ; {
		typ, body, end, ok := frameAt(buf, off)
		if !ok {
			return b, false
		}
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok || !stmtFits(string(q), anyStmt) {
				return b, false
			}
			if len(name) > 0 {
				b.retryable = false
			}
			parsed[string(name)] = string(q)
		case 'B':
			_, name, _, ok := link.BindFields(body)
			if !ok {
				return b, false
			}
			if _, ok := parsed[string(name)]; !ok && !s.namedFits(name, anyStmt) {
				return b, false
			}
		case 'D':
			if len(body) > 0 && body[0] == 'S' && !anyStmt {
				name, _, err := wire.CString(body[1:])
				if _, ok := parsed[string(name)]; err != nil || !ok && !s.namedFits(name, false) {
					return b, false
				}
			}
		case 'E':
			b.exec = true
		case 'H':
		case 'C':
			b.retryable = false
		case 'S':
			b.raw = buf[:end]
			return b, true
		default:
			return b, false
		}
		off = end
	}
}

// namedFits reports whether the client's statement name, prepared before this request,
// may run on a standby (stmtFits).
func (s *Session) namedFits(name []byte, anyStmt bool) bool {
	q, ok := s.stmtText(name)
	return ok && stmtFits(q, anyStmt)
}

// stmtFits reports whether a statement text may run on a standby: proven read-only, or,
// with anyStmt (a read-only session's), not switching to read-write.
func stmtFits(q string, anyStmt bool) bool {
	if anyStmt {
		return !sqlscan.PrimaryOnly(q)
	}
	return sqlscan.ReadOnly(q)
}

// stmtText is the text of the client's statement name prepared before this request: a
// named one's, or the unnamed one's from the client's last Parse of it.
func (s *Session) stmtText(name []byte) (string, bool) {
	if len(name) == 0 {
		if len(s.unnamed.body) == 0 || s.prep == prepPass {
			return "", false
		}
		q, _, err := wire.CString(s.unnamed.body)
		return string(q), err == nil
	}
	def := s.lookupStmt(name)
	if def == nil || def.sql {
		return "", false
	}
	return def.query, true
}

// firstQuery is the statement text a Parse (the current message) carries, or that a
// Bind's statement has.
func (s *Session) firstQuery(typ byte, n int) (string, bool) {
	if typ != 'P' && typ != 'B' || n > maxInspect {
		return "", false
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return "", false
	}
	_, rest, err := wire.CString(wire.Body(m))
	if err != nil {
		return "", false
	}
	second, _, err := wire.CString(rest)
	if err != nil {
		return "", false
	}
	if typ == 'P' {
		return string(second), true // name, query
	}
	return s.stmtText(second) // portal, statement
}

// pickStandby chooses the standby pool for a read (policy above), waiting for the
// client's last commit to be replayed; nil: the primary.
func (s *Session) pickStandby(cl *pool.Cluster, r config.Replica) (*pool.Pool, error) {
	cands := cl.Standbys(r.MaxLag)
	if len(cands) == 0 {
		return nil, nil
	}
	m := s.srv.metrics
	var deadline time.Time
	track := r.MaxWait > 0
	s.mu.Lock()
	dirtyAt := s.rwDirtyAt
	s.mu.Unlock()
	if track && dirtyAt != 0 {
		lsn, known := cl.PrimaryLSNAfter(dirtyAt.Time()) // the hosts' checker asked since: no round trip
		if !known {
			deadline = time.Now().Add(r.MaxWait)
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			var err error
			lsn, err = cl.PrimaryLSN(ctx)
			cancel()
			if err != nil {
				s.log().Debug("read-your-writes: primary position unknown; reading from the primary", zap.Error(err))
				m.ReplicaPrimary(s.dbName, "lsn_unknown")
				return nil, nil
			}
		}
		m.RYWPosition(s.dbName, known)
		s.mu.Lock()
		if s.rwDirtyAt == dirtyAt {
			s.rwDirtyAt = 0
		}
		s.mu.Unlock()
		s.rw.lsn = max(s.rw.lsn, lsn)
	}
	need := s.rw.lsn
	if !track {
		need = 0
	}
	best, bestLoad, caught := -1, 0, false
	for i, c := range cands {
		load := s.entry.replicaLoad(c.Host)
		ok := c.Replayed >= need
		better := best < 0 || ok && !caught || ok == caught && (load < bestLoad ||
			load == bestLoad && c.LagMs < cands[best].LagMs)
		if better {
			best, bestLoad, caught = i, load, ok
		}
	}
	h := cands[best].Host
	if !caught {
		if deadline.IsZero() {
			deadline = time.Now().Add(r.MaxWait)
		}
		start := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := h.WaitReplay(ctx, need)
		cancel()
		m.RYWWaited(s.dbName, time.Since(start), err == nil)
		if err != nil {
			m.ReplicaPrimary(s.dbName, "ryw_timeout")
			return nil, nil
		}
	}
	return s.entry.replicaPool(s.srv.pools, h), nil
}

// standbyBusyWait bounds how long a read waits for a connection of its standby before it
// goes to the primary. A variable for tests (export_cancel_test.go).
var standbyBusyWait = 50 * time.Millisecond

// acquireReplica leases a server of the picked standby, or returns nil for the primary
// path (no pick, or the standby has none to give at once or within a short wait). A
// cancel request for the read while it waits for the standby ends the wait
// (cancelwait.go): the error, errCanceledWaiting, is the request's.
func (s *Session) acquireReplica(cfg *config.Config) (*pool.Conn, error) {
	p := s.pick
	s.pick = nil
	s.linkReplica = false
	if p == nil {
		s.rrNext, s.roFresh = nil, 0
		return nil, nil
	}
	c := p.TryAcquire(s)
	if c == nil {
		// A standby with none to give now is waited for briefly (a connection being
		// dialed, or one about to come back), not for query_wait_timeout: the primary
		// serves the read meanwhile, as the README says. Waiting the client's whole limit
		// held a plain read for as long as another client's transaction held the
		// standby's connections (minutes, with the default 120 s).
		wait := standbyBusyWait
		if l := s.waitLimit(cfg); l > 0 && l < wait {
			wait = l // 0 is no limit: the short wait still applies
		}
		s.mu.Lock()
		s.replicaWait = p // for a cancel request (cancelWait)
		s.mu.Unlock()
		var err error
		c, err = p.AcquireTimeout(s, time.Now(), wait)
		s.mu.Lock()
		s.replicaWait = nil
		s.mu.Unlock()
		if err != nil {
			s.rrNext, s.roFresh = nil, 0
			if errors.Is(err, errCanceledWaiting) {
				return nil, err
			}
			s.log().Debug("standby connection unavailable; reading from the primary", zap.Error(err))
			s.srv.metrics.ReplicaPrimary(s.dbName, "standby_unavailable")
			return nil, nil
		}
	}
	s.linkReplica = true
	s.srv.metrics.ReplicaRead(s.dbName)
	if h := c.Host(); h != nil {
		h.NoteRead()
	}
	if rr := s.rrNext; rr != nil {
		s.rrNext = nil
		rr.c = c
		rr.start = time.Now()
		s.rr.Store(rr)
	}
	return c, nil
}

// endRoute forgets a pick that was not used.
func (s *Session) endRoute() {
	s.pick, s.rrNext = nil, nil
	s.rr.Store(nil)
}

// afterReplicaSend runs after a message of a held request was forwarded: at the request's
// end (Query or Sync) the session waits for the standby's answer, and sends the request
// to the primary when the standby refused it with 25006.
func (s *Session) afterReplicaSend(typ byte) (bool, error) {
	if typ != 'Q' && typ != 'S' {
		return false, nil
	}
	rr := s.rr.Load()
	if rr == nil {
		return false, nil
	}
	retry := s.awaitHeld(rr)
	s.rr.Store(nil)
	if !retry {
		return false, nil
	}
	s.srv.metrics.ReplicaRetried(s.dbName)
	return s.retryOnPrimary(rr.raw)
}

// awaitHeld waits until the held request is answered (or its link ended otherwise) and
// reports whether it is to be sent to the primary.
func (s *Session) awaitHeld(rr *replicaReq) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case retry := <-rr.done:
			return retry
		case <-t.C:
			if s.closed.Load() || s.linkedServer() != rr.c {
				// The link ended: its reader reports at once (holdDone, holdLost)
				// unless the lease was taken from under it.
				select {
				case retry := <-rr.done:
					return retry
				case <-time.After(time.Second):
					return false
				}
			}
		}
	}
}

// retryOnPrimary sends the client's request again, as the client sent it, to the primary.
func (s *Session) retryOnPrimary(raw []byte) (bool, error) {
	s.forcePrimary = true
	defer func() { s.forcePrimary = false }()
	return s.dispatchOwn(raw)
}

// dispatchOwn dispatches the client messages in raw, which pgmux holds, as if the client
// had sent them then, and reports whether messages up to the next Sync are to be dropped.
func (s *Session) dispatchOwn(raw []byte) (bool, error) {
	saved := s.rd
	// The memos are the reader's (scan, fields), and so is the count at the client's last Sync.
	s.rd, s.scan = wire.NewReader(bytes.NewReader(raw)), scanMemo{}
	s.forgetFields()
	s.unnamed.unsureAt(0)
	defer func() {
		s.rd, s.scan = saved, scanMemo{}
		s.forgetFields()
		s.unnamed.unsureAt(saved.Seq())
	}()
	skipping := false
	for {
		typ, n, err := s.rd.Next()
		if errors.Is(err, io.EOF) {
			return skipping, nil
		}
		if err != nil {
			return false, err
		}
		if skipping {
			skipping, err = s.skipUntilSync(typ, n)
		} else {
			skipping, err = s.dispatch(typ, n)
		}
		if err != nil {
			return false, err
		}
	}
}

// holdStep runs on the standby connection's reader for each server message while a
// held request is answered, before the message is handled; s.wmu is held. The client's
// writer is swapped for the hold buffer until the answer shows data or ends; a 25006
// error before that marks the request for the primary.
func (s *Session) holdStep(rr *replicaReq, c *pool.Conn, typ byte, n int) error {
	if !rr.holding {
		return nil
	}
	if rr.real == nil {
		rr.real, s.wr = s.wr, rr.hold
	}
	switch typ {
	case 'T', '1', '2', 't', 'n', 'S', 'N', '3':
		return nil
	case 'E':
		m, err := c.Rd.Peek(n)
		if err != nil {
			return err
		}
		if errorCode(wire.Body(m)) == pgerr.ReadOnlySQLTransaction {
			rr.retry = true
			return nil
		}
	case 'Z':
		if rr.retry {
			return nil
		}
	}
	return s.unhold(rr)
}

// hiddenAhead reports whether the server's next message answers one of pgmux's hidden
// queries (settings sent before the client's request), which the hold leaves alone.
func (s *Session) hiddenAhead(typ byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.hiddenAhead(typ)
}

// unhold gives the client its writer back with what was held, to go out with the rest.
func (s *Session) unhold(rr *replicaReq) error {
	if !rr.holding {
		return nil
	}
	rr.holding = false
	if rr.real == nil {
		return nil
	}
	_ = rr.hold.Flush()
	s.wr, rr.real = rr.real, nil
	if rr.held.Len() == 0 || s.closed.Load() {
		return nil
	}
	if err := s.wr.Write(rr.held.Bytes()); err != nil {
		s.clientWriteFailed()
	}
	rr.held.Reset()
	return nil
}

// holdDone runs on the reader after a held request's ReadyForQuery was handled: the
// client's writer comes back, what was held is dropped for a retry, and the session
// goroutine learns the outcome.
func (s *Session) holdDone(rr *replicaReq) {
	if rr.retry {
		_ = rr.hold.Flush()
		if rr.real != nil {
			s.wr, rr.real = rr.real, nil
		}
		rr.holding = false
		rr.held.Reset()
		s.log().Debug("standby refused a read as a write (25006); sending it to the primary")
	} else {
		_ = s.unhold(rr)
	}
	select {
	case rr.done <- rr.retry:
	default:
	}
}

// holdLost runs when the held request's server connection is lost: the client gets its
// writer back (and whatever came so far) before the failure is reported to it.
func (s *Session) holdLost(c *pool.Conn) {
	rr := s.rr.Load()
	if rr == nil || rr.c != c {
		return
	}
	rr.retry = false
	_ = s.unhold(rr)
	select {
	case rr.done <- false:
	default:
	}
}

// errorCode returns an ErrorResponse body's SQLSTATE.
func errorCode(body []byte) string {
	code := ""
	_ = wire.Fields(body, func(c byte, v []byte) {
		if c == 'C' {
			code = string(v)
		}
	})
	return code
}

// maxReplicaUnlinkWait bounds awaitReplicaUnlink's wait for a complete answer's link to
// end.
const maxReplicaUnlinkWait = 200 * time.Millisecond

// awaitReplicaUnlink: a standby's ReadyForQuery reaches the client before the server's
// reader settles the link (onReady writes it, then settle releases the standby). A
// request the client sends at once can be read in between; dispatched then, it would go
// to that standby without being routed: a write would get the standby's 25006, a read
// that needs the primary would not be held and retried. So a request that finds its
// client still linked to a standby whose answer is complete (status 'I', nothing
// pending) waits, bounded, for the link to end.
//
// A request sent while the standby still answers an earlier one (pipelined: typ starts a
// request, none is open, one is pending) first waits for that answer, however long it
// takes: the earlier request may end its read-only transaction ('BEGIN READ ONLY; ...;
// COMMIT' then 'INSERT ...' sent at once), and what follows it must then be routed anew,
// not ride along to the standby. Inside the transaction (status 'T' or 'E' then) it goes
// on on the standby. The server's reader wakes it at each ReadyForQuery of a standby
// link; the wait ends with the link too (lost, or the client gone). Multi-host databases
// only; the session goroutine calls it.
func (s *Session) awaitReplicaUnlink(typ byte) {
	starts := typ == 'Q' || typ == 'F' || typ == 'P' || typ == 'B' || typ == 'D' || typ == 'E' ||
		typ == 'C' || typ == 'S' || typ == 'H'
	var deadline time.Time
	for {
		s.mu.Lock()
		linked := s.server != nil && s.onReplica
		answering := linked && starts && !s.Unsynced && s.Pending > 0
		ending := linked && s.TxStatus == 'I' && s.Pending == 0 && s.q.len() == 0
		wake := s.q.wakeChan()
		s.mu.Unlock()
		if !answering && !ending || s.closed.Load() {
			return
		}
		tick := answeringTick
		if ending {
			tick = time.Millisecond
			if deadline.IsZero() {
				deadline = time.Now().Add(maxReplicaUnlinkWait)
			} else if time.Now().After(deadline) {
				return
			}
		}
		t := time.NewTimer(tick)
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// answeringTick is how often awaitReplicaUnlink looks again while the standby answers,
// should a wake-up be missed.
const answeringTick = 20 * time.Millisecond
