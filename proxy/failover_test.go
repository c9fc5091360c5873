package proxy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
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
