package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// failoverSession is a session of a database with the given hosts and pool mode.
func failoverSession(host string, mode config.PoolMode) *Session {
	e := &poolEntry{db: &config.Database{Name: "app", Host: host}, mode: mode}
	e.multi.Store(multiHost(e.db))
	return &Session{entry: e, sessionWork: newWork()}
}

func TestRecoverable(t *testing.T) {
	require.True(t, failoverSession("a,b", config.PoolModeTransaction).recoverable())
	require.True(t, failoverSession("a,b", config.PoolModeStatement).recoverable())
	require.False(t, failoverSession("a,b", config.PoolModeSession).recoverable(), "session state would be lost")
	require.False(t, failoverSession("a", config.PoolModeTransaction).recoverable(), "one host: no failover")
	s := failoverSession("a,b", config.PoolModeTransaction)
	s.closed.Store(true)
	require.False(t, s.recoverable())
}

func TestFatalFromServer(t *testing.T) {
	s := failoverSession("a,b", config.PoolModeTransaction)
	fatal := errorMsg("SFATAL", "VFATAL", "C57P01", "Mterminating connection due to administrator command")
	gone := s.fatalFromServer(fatal)
	require.NotNil(t, gone)
	require.Equal(t, "57P01", gone.pe.Code)
	require.Nil(t, s.fatalFromServer(errorMsg("SERROR", "VERROR", "C42P01", "Mrelation does not exist")))
	require.NotNil(t, s.fatalFromServer(errorMsg("SFATAL", "C57P02", "Mcrash")), "no V field (before PostgreSQL 9.6)")
	require.Nil(t, failoverSession("a", config.PoolModeTransaction).fatalFromServer(fatal), "single host: relayed as before")
}

func TestTerminated(t *testing.T) {
	pe := terminated(&serverGone{pe: pgerr.Fatal(pgerr.AdminShutdown, "terminating connection due to administrator command")})
	require.Equal(t, pgerr.SeverityError, pe.Severity, "an ERROR: the client's connection stays")
	require.Equal(t, "57P01", pe.Code)
	require.Equal(t, "terminating connection due to administrator command", pe.Message)
	pe = terminated(errors.New("EOF"))
	require.Equal(t, pgerr.SeverityError, pe.Severity)
	require.Equal(t, pgerr.ConnectionFailure, pe.Code)
}

func TestFailoverRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("connect to server 10.0.0.1:5432: connection refused"), true},
		{fmt.Errorf("%w read-write: it is a standby", pool.ErrWrongRole), true},
		{pgerr.Fatal(pgerr.CannotConnectNow, "the database system is shutting down"), true},
		{pgerr.Fatal(pgerr.InvalidPassword, "password authentication failed"), false},
		{fmt.Errorf("%w: waited 1s", pool.ErrWaitTimeout), false},
		{pool.ErrClosed, false},
	} {
		require.Equal(t, tc.want, failoverRetryable(tc.err), "%v", tc.err)
	}
}

func TestNoteCommit(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"COMMIT", true}, {"commit;", true}, {"END", true}, {"COMMIT WORK", true},
		{"COMMIT PREPARED 'x'", false}, {"ROLLBACK", false}, {"SELECT 1", false}, {"COMMIT; SELECT 1", false},
		{"create table c (v int)", false}, {"", false},
	} {
		s := failoverSession("a,b", config.PoolModeTransaction)
		s.noteCommit([]byte(tc.sql))
		require.Equal(t, tc.want, s.fo&foCommit != 0, tc.sql)
	}
}

// lostSession is a failover session linked to c inside a transaction, with nothing
// pending, whose client output goes to out.
func lostSession(t *testing.T, out *bytes.Buffer) (*Session, *pool.Conn) {
	t.Helper()
	s := failoverSession("a,b", config.PoolModeTransaction)
	s.srv = &Server{log: zap.NewNop()}
	s.srv.metrics = metrics.New(metricsView{s.srv})
	s.wr = wire.NewWriter(out)
	c := &pool.Conn{}
	s.server, s.TxStatus, s.state = c, 'T', ClientActive
	return s, c
}

// TestLostBeforeCommitSent: the client's COMMIT was marked (noteCommitAhead) but not sent
// when its server was lost: the transaction is lost, not over, and the COMMIT, already
// past answerAborted, is answered by the failover state (serverFor refuses to lease a
// new server for it) with the termination error and ReadyForQuery 'I', not run on a new
// server, where it would succeed with nothing to commit.
func TestLostBeforeCommitSent(t *testing.T) {
	var out bytes.Buffer
	s, c := lostSession(t, &out)
	s.noteCommit([]byte("COMMIT"))
	require.True(t, s.recoverLink(c, errors.New("EOF")))
	require.Zero(t, out.Len(), "nothing was in flight: nothing told yet")
	require.Equal(t, foAborted|foTell, s.fo&^foCommitMarks)
	_, err := s.serverFor('Q')
	require.ErrorIs(t, err, errLostMeanwhile)
}

// TestLostAfterCommitSent: a COMMIT sent (accounted) when the server was lost failed:
// the transaction is over, and the client is told so at once, with ReadyForQuery 'I'.
func TestLostAfterCommitSent(t *testing.T) {
	var out bytes.Buffer
	s, c := lostSession(t, &out)
	s.noteCommit([]byte("COMMIT"))
	s.mu.Lock()
	s.account('Q')
	s.mu.Unlock()
	require.True(t, s.recoverLink(c, errors.New("EOF")))
	require.Zero(t, s.fo)
	require.Equal(t, byte('I'), s.TxStatus)
	b := out.Bytes()
	require.NotEmpty(t, b)
	require.Equal(t, byte('E'), b[0], "the termination error")
	require.Equal(t, []byte{'Z', 0, 0, 0, 5, 'I'}, b[len(b)-6:])
}

// TestLostWhileDispatching: a server lost with the client idle in its transaction, while
// the session was already dispatching the client's next request (past answerAborted):
// serverFor does not lease a new server for it, so the request is answered as the client's
// first after the loss, and the state does not linger to answer a later one wrongly.
func TestLostWhileDispatching(t *testing.T) {
	var out bytes.Buffer
	s, c := lostSession(t, &out)
	require.True(t, s.recoverLink(c, errors.New("EOF")))
	for _, fo := range []foFlags{foAborted | foTell, foAborted | foSkip} {
		s.fo = fo
		_, err := s.serverFor('B')
		require.ErrorIs(t, err, errLostMeanwhile, "fo %b", fo)
	}
}

// errorMsg is an ErrorResponse with the fields given (type letter and value each).
func errorMsg(fields ...string) []byte {
	b := []byte{'E', 0, 0, 0, 0}
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}
