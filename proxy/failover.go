package proxy

import (
	"errors"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Failover: a client of a multi-host database whose server connection is lost (the
// primary stopped, or was terminated) keeps its connection to pgmux. A request in flight
// gets the error PostgreSQL gives on a terminated connection, as an ERROR rather than a
// FATAL, and ReadyForQuery; a transaction that was open is gone, and the client is told
// so as PostgreSQL tells a client in an aborted transaction, until it ends it. Its next
// transactions wait for a primary up to failover_timeout (serverFor).

// foFlags are a session's failover state, guarded by Session.mu: set by the server's
// reader goroutine when the server is lost, consumed by the session goroutine.
type foFlags uint8

const (
	// foAborted: the client's transaction died with its server; it is answered as one in
	// an aborted transaction until it ends it (ROLLBACK, COMMIT answered here; anything
	// else on a new server put into an aborted transaction first, so PostgreSQL answers).
	foAborted foFlags = 1 << iota
	// foTell: the server was lost while the client sat in its transaction with nothing
	// pending; its next request gets the termination error.
	foTell
	// foSkip: extended-protocol messages are dropped until Sync, which gets ReadyForQuery.
	foSkip
	// foCommit: the client's request being dispatched is a COMMIT (simple protocol),
	// marked before it is sent (noteCommitAhead).
	foCommit
	// foCommitSent: that COMMIT was sent (accountAt). Lost with its server, the
	// transaction is over, as after a COMMIT that failed: the client is told so with
	// ReadyForQuery 'I' (drivers such as pgx close a connection whose failed COMMIT leaves
	// it in a transaction). A COMMIT not sent yet when the server was lost is the
	// client's next request in a lost transaction, and fails as such (errLostMeanwhile).
	foCommitSent

	foCommitMarks = foCommit | foCommitSent
)

// errLostMeanwhile: the client's server was lost (recoverLink) while the session was
// dispatching its next request, after it had looked at the failover state
// (answerAborted) and before the request reached the server. serverFor returns it
// instead of leasing a new server, and dispatch answers the request as the failover
// state says, as if the loss had come a moment sooner; otherwise the request would run on
// a new server while the state kept telling the client about a loss at its next one.
var errLostMeanwhile = errors.New("server lost while the request was dispatched")

// abortSQL leaves a fresh server in an aborted transaction, for a client whose
// transaction was lost in a failover: whatever it sends next is answered by PostgreSQL
// as in that state. Its error is pgmux's own and is not shown (abortMessage).
const abortSQL = "BEGIN; DO $pgmux$BEGIN RAISE EXCEPTION '" + abortMessage + "'; END$pgmux$"

const abortMessage = "pgmux: transaction lost in a failover"

// recoverable reports whether a lost server connection can be survived by the client:
// a multi-host database, pooled per transaction or statement, with no session state on
// the server that the client would lose without knowing.
func (s *Session) recoverable() bool {
	if s.entry == nil || s.closed.Load() {
		return false
	}
	db, mode, _ := s.entry.snapshot()
	return multiHost(db) && mode != config.PoolModeSession && !s.kind.forced()
}

// terminated is the error a client is given for the request its lost server was
// running: PostgreSQL's own when the server said why (57P01 on a shutdown), else 08006.
func terminated(cause error) *pgerr.Error {
	var pe *pgerr.Error
	if errors.As(cause, &pe) && pe.Code != "" {
		return pgerr.New(pe.Code, "%s", pe.Message).
			WithDetail("The server connection was lost (%v); the transaction, if any, was rolled back. This connection to pgmux stays usable.", cause)
	}
	return pgerr.New(pgerr.ConnectionFailure, "server closed the connection unexpectedly").
		WithDetail("The server connection was lost (%v); the transaction, if any, was rolled back. This connection to pgmux stays usable.", cause)
}

// serverGone wraps a FATAL ErrorResponse from a server: the server is about to close the
// connection (shutdown, terminated backend).
type serverGone struct{ pe *pgerr.Error }

func (e *serverGone) Error() string { return "server terminated the connection: " + e.pe.Error() }
func (e *serverGone) Unwrap() error { return e.pe }

// fatalFromServer reports a FATAL or PANIC ErrorResponse that a recoverable client must
// not see: the relay ends the link instead (recoverLink).
func (s *Session) fatalFromServer(m []byte) *serverGone {
	body := wire.Body(m)
	if !fatalSeverity(body) || !s.recoverable() {
		return nil
	}
	pe, _ := pgerr.Parse(body)
	return &serverGone{pe: pe}
}

// fatalSeverity reports whether an ErrorResponse body is FATAL or PANIC: the server
// ends the connection after it. The V field (not localized) wins over S.
func fatalSeverity(body []byte) bool {
	sev := ""
	_ = wire.Fields(body, func(c byte, v []byte) {
		if c == 'V' || (c == 'S' && sev == "") {
			sev = string(v)
		}
	})
	return sev == pgerr.SeverityFatal || sev == "PANIC"
}

// recoverLink ends the link to a lost server without ending the client: requests in
// flight are answered with the termination error and ReadyForQuery, an open transaction
// is marked aborted. It runs on the server's reader goroutine, holding s.wmu, and
// reports false when the client cannot be kept (the caller then closes it).
func (s *Session) recoverLink(c *pool.Conn, cause error) bool {
	s.mu.Lock()
	if s.server != c {
		s.mu.Unlock()
		return true
	}
	if s.pinned != 0 || s.holdsDirect || !s.recoverable() {
		s.mu.Unlock()
		return false
	}
	pending, unsynced, inTx := s.Pending, s.Unsynced, s.TxStatus != 'I'
	if s.fo&foCommitSent != 0 {
		inTx = false // the COMMIT failed: the transaction is over
	}
	s.fo = 0
	s.server = nil
	s.Pending, s.Unsynced = 0, false
	s.state = ClientIdle
	s.disarmAll()
	s.q.each(func(e expect) {
		if e.Reg != nil && (e.Kind == 'Q' || (e.Kind == 'P' || e.Kind == 'E') && !e.Hide) {
			// Its Parse or PREPARE (a Query, or an Execute: sqlprep_ext.go) never
			// completed: no such name.
			e.Reg.failed.Store(true)
		}
	})
	s.q.reset()
	s.DropErr = false
	s.ddlSettled('I') // the transaction is over, whatever it sent
	status := byte('I')
	if inTx {
		status = 'E'
		s.fo |= foAborted
	}
	if pending == 0 && !unsynced && inTx {
		s.fo |= foTell // idle in its transaction: told at its next request
	}
	if unsynced {
		s.fo |= foSkip
	}
	s.TxStatus = status
	s.mu.Unlock()
	s.log().Warn("server connection lost; client kept", zap.Error(cause), zap.Int("requests_in_flight", pending),
		zap.Bool("in_transaction", inTx))
	if pending == 0 && !unsynced {
		return true
	}
	pe := terminated(cause)
	b := pe.Append(nil)
	s.srv.metrics.ErrorSent(pe.Code)
	for i := 0; i < pending; i++ {
		if i > 0 {
			b = pe.Append(b)
		}
		b = wire.ReadyForQuery(b, status)
	}
	err := s.wr.Write(b)
	if err == nil {
		err = s.wr.Flush()
	}
	if err != nil {
		s.clientWriteFailed() // the client is gone too
	}
	return true
}

// answerAborted answers a client message while its failover state says so; it reports
// false when the message is to go on to a server (a new one, put into an aborted
// transaction first). A simple Query it answers drops the client's unnamed statement,
// as one that reaches PostgreSQL does (queryDrops), unless that was done already
// (applied); one it skips to the Sync with the rest of a lost request does not, as
// PostgreSQL's skipping.
func (s *Session) answerAborted(typ byte, n int, applied bool) (bool, error) {
	s.mu.Lock()
	fo := s.fo
	s.mu.Unlock()
	status := byte('I')
	if fo&foAborted != 0 {
		status = 'E'
	}
	switch {
	case fo&foSkip != 0:
		if err := s.rd.Skip(n); err != nil {
			return true, err
		}
		if typ != 'S' {
			return true, nil
		}
		// The request ends: the lost server's copy of the unnamed statement is no one's.
		s.unnamed.endRequest(s.rd.Seq())
		s.setFo(fo &^ foSkip)
		return true, s.writeClient(wire.ReadyForQuery(nil, status))
	case fo&foTell != 0:
		end, err := s.endsTransaction(typ, n)
		if err != nil {
			return true, err
		}
		pe := terminated(errors.New("the server stopped while the client was in a transaction"))
		if typ == 'Q' && !applied {
			s.queryAnswered()
		}
		if typ == 'P' {
			if err := s.parseRefused(n); err != nil {
				return true, err
			}
		}
		if end == sqlscan.KindOther {
			if err := s.rd.Skip(n); err != nil {
				return true, err
			}
		}
		switch {
		case end == sqlscan.KindRollback:
			s.setFo(0)
			return true, s.writeClient(rollbackAnswer())
		case end == sqlscan.KindCommit:
			s.setFo(0) // the transaction is over, and lost: the COMMIT fails
			s.srv.metrics.ErrorSent(pe.Code)
			return true, s.writeClient(wire.ReadyForQuery(pe.Append(nil), 'I'))
		case typ == 'Q':
			s.setFo(foAborted)
			s.srv.metrics.ErrorSent(pe.Code)
			return true, s.writeClient(wire.ReadyForQuery(pe.Append(nil), 'E'))
		}
		// Extended protocol: the error now, ReadyForQuery at Sync.
		s.setFo(foAborted | foSkip)
		if typ == 'S' {
			s.setFo(foAborted)
			return true, s.writeClient(wire.ReadyForQuery(pe.Append(nil), 'E'))
		}
		s.srv.metrics.ErrorSent(pe.Code)
		return true, s.writeClient(pe.Append(nil))
	case fo&foAborted != 0 && typ == 'Q':
		end, err := s.endsTransaction(typ, n)
		if err != nil || end == sqlscan.KindOther {
			return err != nil, err // the message is still unread: a server answers it
		}
		// ROLLBACK or COMMIT of the lost transaction: what PostgreSQL answers in an
		// aborted transaction, without waiting for a primary.
		if !applied {
			s.queryAnswered()
		}
		s.setFo(0)
		return true, s.writeClient(rollbackAnswer())
	}
	return false, nil
}

// queryAnswered applies a simple Query pgmux answers itself to the client's unnamed
// statement: PostgreSQL drops it, whatever the Query (deferLocal does for the others).
func (s *Session) queryAnswered() {
	if s.prep != prepPass {
		s.queryDrops()
		s.unnamed.stampQ = false // not sent: no expect to mark
	}
}

// parseRefused applies a client's Parse that pgmux answers with the error of its lost
// transaction, and that is therefore the Parse that failed: one of the unnamed statement
// drops it, as exec_parse_message drops the old one before it fails. (pgmux kept it,
// and a later Describe of it met the old statement.) The message, n bytes of body, is
// still unread.
func (s *Session) parseRefused(n int) error {
	if s.prep == prepPass || n < 1 {
		return nil
	}
	m, err := s.rd.Peek(1) // the header and the name's first byte
	if err != nil {
		return err
	}
	if m[wire.HeaderLen] == 0 {
		s.beginUnnamed()
		s.unnamed.drop()
	}
	return nil
}

func (s *Session) setFo(f foFlags) {
	s.mu.Lock()
	s.fo = f
	s.TxStatus = 'I'
	if f&foAborted != 0 {
		s.TxStatus = 'E'
	}
	s.mu.Unlock()
}

// rollbackAnswer is PostgreSQL's answer to ROLLBACK, or COMMIT, in an aborted
// transaction.
func rollbackAnswer() []byte {
	return wire.ReadyForQuery(wire.CommandComplete(nil, "ROLLBACK"), 'I')
}

// endsTransaction reports whether a simple Query is one statement ending a transaction
// (KindCommit or KindRollback), consuming it if so; any other message is left unread
// (KindOther).
func (s *Session) endsTransaction(typ byte, n int) (sqlscan.Kind, error) {
	if typ != 'Q' || n > 1024 {
		return sqlscan.KindOther, nil
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return sqlscan.KindOther, err
	}
	text, _, err := wire.CString(wire.Body(m))
	if err != nil || len(text) == 0 {
		return sqlscan.KindOther, nil
	}
	sts := sqlscan.Scan(unsafe.String(&text[0], len(text)))
	if len(sts) != 1 || (sts[0].Kind != sqlscan.KindCommit && sts[0].Kind != sqlscan.KindRollback) {
		return sqlscan.KindOther, nil
	}
	return sts[0].Kind, s.rd.Skip(n)
}

// abortOnLink puts a freshly linked server into an aborted transaction when the client's
// transaction was lost in a failover; s.mu is held.
func (s *Session) abortOnLink(c *pool.Conn) {
	if s.fo&foAborted == 0 {
		return
	}
	s.fo &^= foAborted
	s.q.push(&expect{Kind: 'Q', Hide: true})
	_ = c.Wr.Write(wire.Query(nil, abortSQL)) // a failed write surfaces at the client's flush
}

// waitLimit is how long a client may queue for a server: query_wait_timeout, or, while
// a multi-host database that needs a primary has none reachable (a failover), at most
// failover_timeout.
func (s *Session) waitLimit(cfg *config.Config) time.Duration {
	if !s.entry.multi.Load() || !s.inFailover(cfg) {
		return cfg.QueryWaitTimeout
	}
	if cfg.QueryWaitTimeout <= 0 || cfg.FailoverTimeout < cfg.QueryWaitTimeout {
		return cfg.FailoverTimeout
	}
	return cfg.QueryWaitTimeout
}

// inFailover reports a multi-host database that needs a primary and knows none reachable.
func (s *Session) inFailover(cfg *config.Config) bool {
	db, _, _ := s.entry.snapshot()
	cl := s.srv.pools.hosts.forDB(db)
	return cl != nil && cfg.FailoverTimeout > 0 && needsPrimary(db) && !cl.HasPrimary()
}

// failoverWait is the pool's bound on a wait behind failed dials: failover_timeout for a
// multi-host database that needs a primary, else none.
func failoverWait(cfg *config.Config, db *config.Database) time.Duration {
	if !multiHost(db) || !needsPrimary(db) {
		return 0
	}
	return cfg.FailoverTimeout
}

func needsPrimary(db *config.Database) bool {
	return db.TargetSessionAttrs == "read-write" || db.TargetSessionAttrs == "primary"
}

// noPrimary is the error for a transaction that waited failover_timeout in vain.
func noPrimary(db *config.Database, cfg *config.Config, cause error) error {
	return pgerr.New(pgerr.ConnectionFailure, "no server fitting target_session_attrs=%s for database %q within failover_timeout (%v)",
		db.EffectiveTargetSessionAttrs(), db.Name, cfg.FailoverTimeout).WithDetail("%v", cause)
}

// acquireFailover retries a failed acquire of a multi-host database while no fitting
// server is reachable, up to failover_timeout: it waits for the hosts' checkers to see a
// change (a promoted standby) and tries again.
func (s *Session) acquireFailover(cfg *config.Config, err error) (*pool.Conn, error) {
	db, _, _ := s.entry.snapshot()
	cl := s.srv.pools.hosts.forDB(db)
	if cl == nil || cfg.FailoverTimeout <= 0 {
		return nil, err
	}
	if errors.Is(err, pool.ErrWaitTimeout) && s.inFailover(cfg) {
		return nil, noPrimary(db, cfg, err) // it queued for failover_timeout already
	}
	if !failoverRetryable(err) {
		return nil, err
	}
	deadline := time.Now().Add(cfg.FailoverTimeout)
	needPrimary := needsPrimary(db)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, noPrimary(db, cfg, err)
		}
		ch := cl.Changed()
		if !needPrimary || !cl.HasPrimary() {
			t := time.NewTimer(min(left, time.Second))
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
		}
		if needPrimary && !cl.HasPrimary() && time.Until(deadline) > 0 {
			continue
		}
		s.entry.pool.ClearBackoff()
		var c *pool.Conn
		if c, err = s.entry.pool.AcquireTimeout(s, time.Now(), max(time.Until(deadline), time.Millisecond)); err == nil {
			return c, nil
		}
		if errors.Is(err, pool.ErrWaitTimeout) {
			return nil, noPrimary(db, cfg, err)
		}
		if !failoverRetryable(err) {
			return nil, err
		}
	}
}

// failoverRetryable reports an acquire failure that a failover explains: no host could
// be reached, or none fitted target_session_attrs. A server's refusal (password, unknown
// database) and a full pool are not.
func failoverRetryable(err error) bool {
	if errors.Is(err, pool.ErrWrongRole) {
		return true
	}
	if errors.Is(err, pool.ErrWaitTimeout) || errors.Is(err, pool.ErrClosed) || errors.Is(err, errCanceledWaiting) {
		return false
	}
	var pe *pgerr.Error
	return !errors.As(err, &pe) || pe.Code == pgerr.CannotConnectNow || pe.Code == pgerr.AdminShutdown
}

// noteCommitAhead marks a simple Query that is a COMMIT (noteCommit) before serverFor
// counts it as in flight: a server lost in between (recoverLink, on the server's reader)
// must find the mark, or the client is told its transaction is still open (ReadyForQuery
// 'E') and pgx closes the connection after the failed COMMIT.
func (s *Session) noteCommitAhead(n int) error {
	if n > 64 {
		return nil // longer than any text noteCommit considers
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return err
	}
	if text, _, err := wire.CString(wire.Body(m)); err == nil {
		s.noteCommit(text)
	}
	return nil
}

// clearCommit drops the COMMIT mark of a request refused before it reached a server.
func (s *Session) clearCommit() {
	s.mu.Lock()
	s.fo &^= foCommitMarks
	s.mu.Unlock()
}

// noteCommit marks a simple Query that is a COMMIT as in flight (foCommit); onReady
// clears the mark. It runs on the session goroutine for multi-host databases only.
func (s *Session) noteCommit(text []byte) {
	if len(text) == 0 || len(text) > 40 || (text[0]|0x20 != 'c' && text[0]|0x20 != 'e') {
		return
	}
	sts := sqlscan.Scan(string(text))
	if len(sts) == 1 && sts[0].Kind == sqlscan.KindCommit {
		s.mu.Lock()
		s.fo |= foCommit
		s.mu.Unlock()
	}
}

// flushError is a failed flush to a server after whole client messages were forwarded:
// nothing of the client's stream is left half read.
type flushError struct{ we *wire.WriteError }

func (e *flushError) Error() string { return e.we.Error() }
func (e *flushError) Unwrap() error { return e.we }

// lostServer handles a failed write to a server of a multi-host database: when the
// client's messages went out whole, the server's reader ends the link and answers what
// was in flight (recoverLink), and the client goes on. It reports false when the client
// cannot be kept.
func (s *Session) lostServer(c *pool.Conn, err error) bool {
	var fe *flushError
	if !errors.As(err, &fe) || !s.recoverable() {
		return false
	}
	s.mu.Lock()
	pinned := s.pinned != 0 || s.holdsDirect
	s.mu.Unlock()
	if pinned {
		return false
	}
	c.Discard(err) // its reader sees the closed socket and recovers the link, if still linked
	return true
}

// idleStatus is the transaction status of a client without a server: 'E' while its
// transaction, lost in a failover, is not ended yet, else 'I'.
func (s *Session) idleStatus() byte {
	if !s.entry.multi.Load() {
		return 'I'
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fo&foAborted != 0 {
		return 'E'
	}
	if s.roMoved != 0 {
		return 'T' // a transaction moving off a standby (replica_move.go)
	}
	return 'I'
}
