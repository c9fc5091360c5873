package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// relay reads the client's messages and forwards them to a linked server, leasing one
// when the client starts a transaction. It returns when the client leaves.
func (s *Session) relay() error {
	defer s.clientGone()
	skipping := false // after a refused extended-protocol message: drop until Sync
	for {
		typ, n, err := s.rd.Next()
		if err != nil {
			if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrBadLength) {
				s.fatal(pgerr.Fatal(pgerr.ProtocolViolation, "%v", err))
			}
			return err
		}
		if !frontendMessage(typ) {
			s.fatal(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return fmt.Errorf("invalid frontend message type %d", typ)
		}
		if typ == 'X' {
			return nil
		}
		if skipping {
			if skipping, err = s.skipUntilSync(typ, n); err != nil {
				return err
			}
			continue
		}
		c, err := s.serverFor(typ)
		if err != nil {
			if skipping, err = s.refuse(typ, n, err); err != nil {
				return err
			}
			continue
		}
		if err := s.rd.Forward(c.Wr, n); err != nil {
			return s.forwardFailed(c, err)
		}
		if s.rd.Buffered() == 0 {
			if err := c.Wr.Flush(); err != nil {
				return s.forwardFailed(c, &wire.WriteError{Err: err})
			}
		}
	}
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
	s.state = ClientWaiting
	s.mu.Unlock()

	cfg := s.srv.Config()
	start := time.Now()
	c := s.entry.pool.TryAcquire(s)
	if c == nil {
		ctx, cancel := waitContext(cfg)
		var err error
		c, err = s.entry.pool.Acquire(ctx, s)
		cancel()
		if err != nil {
			s.mu.Lock()
			s.state = ClientIdle
			s.mu.Unlock()
			return nil, err
		}
	}
	_, mode, _ := s.entry.snapshot()
	s.mu.Lock()
	s.stats.WaitTime += time.Since(start)
	s.server, s.pending, s.unsynced = c, 0, false
	s.mode = mode
	s.state = ClientActive
	s.hidden.Store(0)
	s.syncParams(c)
	s.account(typ)
	s.mu.Unlock()
	return c, nil
}

// account records what a forwarded message means for the link; s.mu is held.
func (s *Session) account(typ byte) {
	switch typ {
	case 'Q', 'F':
		s.pending++
	case 'S':
		s.pending++
		s.unsynced = false
	case 'P', 'B', 'D', 'E', 'C', 'H':
		s.unsynced = true
	}
}

// refuse answers a message that could not get a server: an error, and ReadyForQuery at
// the end of the client's batch. It reports whether messages up to Sync are to be dropped.
func (s *Session) refuse(typ byte, n int, cause error) (bool, error) {
	if err := s.rd.Skip(n); err != nil {
		return false, err
	}
	pe := acquireError(s, cause)
	s.log.Info("could not get a server connection", zap.Error(cause))
	b := pe.Append(nil)
	skipping := false
	switch typ {
	case 'Q', 'F', 'S':
		b = wire.ReadyForQuery(b, 'I')
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
	return false, s.writeClient(wire.ReadyForQuery(nil, 'I'))
}

func acquireError(s *Session, err error) *pgerr.Error {
	var pe *pgerr.Error
	switch {
	case errors.As(err, &pe):
		return &pgerr.Error{Severity: pgerr.SeverityError, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
	case errors.Is(err, pool.ErrWaitTimeout):
		st := s.entry.pool.Options()
		return pgerr.New(pgerr.QueryCanceled, "query_wait_timeout: no server connection became free for database %q, user %q", s.dbName, s.user).
			WithDetail("All %d server connections of the pool stayed busy; %v.", st.Size, err).
			WithHint("Raise default_pool_size or query_wait_timeout, or shorten transactions.")
	case errors.Is(err, pool.ErrClosed):
		return pgerr.New(pgerr.CannotConnectNow, "database %q is being reconfigured or shut down", s.dbName)
	}
	return pgerr.New(pgerr.ConnectionFailure, "could not connect to the server for database %q: %v", s.dbName, err)
}

// serverError turns a login-time server failure into a FATAL for the client.
func serverError(err error) *pgerr.Error {
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return &pgerr.Error{Severity: pgerr.SeverityFatal, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
	}
	if errors.Is(err, pool.ErrWaitTimeout) {
		return pgerr.Fatal(pgerr.CannotConnectNow, "timed out waiting for a server connection to log in: %v", err)
	}
	return pgerr.Fatal(pgerr.ConnectionFailure, "could not connect to the server: %v", err)
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
		s.fatal(pgerr.Fatal(pgerr.ConnectionFailure, "server connection failed while sending: %v", we.Err))
	}
	return err
}

// writeClient writes b to the client now; only while no server is linked.
func (s *Session) writeClient(b []byte) error {
	if err := s.wr.Write(b); err != nil {
		return err
	}
	return s.wr.Flush()
}

// fatal sends a FATAL error to the client and closes its connection.
func (s *Session) fatal(pe *pgerr.Error) {
	s.closed.Store(true)
	_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.nc.Write(pe.Append(nil))
	_ = s.nc.Close()
}

// clientGone ends the session's link when the client leaves: a clean server goes back to
// the pool (reset in session mode), one in the middle of something is closed.
func (s *Session) clientGone() {
	s.closed.Store(true)
	s.mu.Lock()
	c := s.server
	clean := c != nil && s.pending == 0 && !s.unsynced && s.txStatus == 'I' && s.hidden.Load() == 0
	s.server = nil
	mode := s.mode
	s.state = ClientClosed
	s.mu.Unlock()
	if c == nil {
		return
	}
	if clean {
		c.Release(mode == config.PoolModeSession || s.srv.Config().ServerResetQueryAlways)
		return
	}
	c.Discard(io.ErrUnexpectedEOF)
}

// Pump relays the server's messages to the client while c is leased to s. It runs on c's
// reader goroutine and returns nil once the lease has ended.
func (s *Session) Pump(c *pool.Conn) error {
	rd := c.Rd
	for {
		if rd.Buffered() == 0 && s.wr.Buffered() > 0 {
			if err := s.wr.Flush(); err != nil {
				s.clientWriteFailed()
			}
		}
		typ, n, err := rd.Next()
		if err != nil {
			s.serverFailed(c, err)
			return err
		}
		if c.Lessee() != pool.Lessee(s) {
			return nil
		}
		switch typ {
		case 'Z':
			released, err := s.onReady(c, n)
			if err != nil || released {
				return err
			}
			continue
		case 'S':
			err = s.onParameterStatus(c, n)
		case 'E':
			if s.hidden.Load() > 0 {
				err = s.onHiddenError(rd, n)
			} else {
				err = s.forward(rd, n)
			}
		default:
			if s.hidden.Load() > 0 {
				err = rd.Skip(n)
			} else {
				err = s.forward(rd, n)
			}
		}
		if err != nil {
			s.serverFailed(c, err)
			return err
		}
	}
}

// forward relays one server message; once the client is gone, output is dropped.
func (s *Session) forward(rd *wire.Reader, n int) error {
	if s.closed.Load() {
		return rd.Skip(n)
	}
	err := rd.Forward(s.wr, n)
	var we *wire.WriteError
	if errors.As(err, &we) {
		s.clientWriteFailed()
		return nil
	}
	return err
}

func (s *Session) clientWriteFailed() {
	s.closed.Store(true)
	_ = s.nc.Close()
}

// onReady handles ReadyForQuery: the end of a hidden query, or of the client's request,
// where a transaction-mode link ends if nothing else is pending.
func (s *Session) onReady(c *pool.Conn, n int) (bool, error) {
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
	if s.hidden.Load() > 0 {
		s.hidden.Add(-1)
		return false, nil
	}
	if !s.closed.Load() {
		if err := s.wr.Write(m); err == nil {
			err = s.wr.Flush()
		}
		if err != nil {
			s.clientWriteFailed()
		}
	}
	s.mu.Lock()
	if s.server != c {
		s.mu.Unlock()
		return false, nil
	}
	if s.pending > 0 {
		s.pending--
	}
	s.txStatus = status
	s.stats.Queries++
	if status == 'I' {
		s.stats.Transactions++
	}
	idle := s.pending == 0 && !s.unsynced
	closed := s.closed.Load()
	release := idle && status == 'I' && (s.mode != config.PoolModeSession || closed)
	badStatement := idle && status != 'I' && s.mode == config.PoolModeStatement
	dirtyClosed := closed && idle && status != 'I'
	if release || badStatement || dirtyClosed {
		s.server = nil
		s.state = ClientIdle
	}
	mode := s.mode
	s.mu.Unlock()
	switch {
	case release:
		c.Release((closed && mode == config.PoolModeSession) || s.srv.Config().ServerResetQueryAlways)
		return true, nil
	case badStatement:
		c.Discard(errors.New("transaction in statement mode"))
		s.fatal(pgerr.Fatal(pgerr.FeatureNotSupported, "transaction blocks not allowed in statement pooling mode"))
		return true, nil
	case dirtyClosed:
		c.Discard(errors.New("client left inside a transaction"))
		return true, nil
	}
	return false, nil
}

// serverFailed tells a linked client that its server connection broke, and closes it:
// its transaction, if any, is gone.
func (s *Session) serverFailed(c *pool.Conn, err error) {
	s.mu.Lock()
	linked := s.server == c
	if linked {
		s.server = nil
		s.pending, s.unsynced = 0, false
		s.state = ClientIdle
	}
	s.mu.Unlock()
	if linked && !s.closed.Load() {
		s.log.Warn("server connection lost while serving client", zap.Error(err))
		s.fatal(pgerr.Fatal(pgerr.ConnectionFailure, "server closed the connection unexpectedly").
			WithDetail("%v", err).
			WithHint("The server may have been restarted or the backend terminated; reconnect and retry."))
	}
}

func (s *Session) onHiddenError(rd *wire.Reader, n int) error {
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	pe, _ := pgerr.Parse(wire.Body(m))
	s.log.Warn("applying the client's session parameters on a server failed", zap.Error(pe))
	return nil
}
