package proxy

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/proxy/listenmux"
)

// LISTEN and UNLISTEN wherever a simple Query makes them: at top level, or inside DO
// blocks. A DO block whose body is only BEGIN, LISTEN/UNLISTEN of literal channels and
// END (sqlscan's Block.ListenOnly) does exactly what those statements would do, so an
// idle client's block is served by the shared listener like a plain LISTEN, answered
// with the CommandComplete "DO" PostgreSQL sends. Any other block that LISTENs (a
// condition, another statement, an EXECUTE, an exception handler) runs on the client's
// server and pins it: only PostgreSQL can tell what such a block did, and its errors
// must be PostgreSQL's. The state check after it (see classify) unpins again when the
// block left no channel behind.

// listenStatement reports whether listenLocally can answer st without a server.
func listenStatement(st *sqlscan.Statement) bool {
	switch st.Kind {
	case sqlscan.KindListen, sqlscan.KindUnlisten, sqlscan.KindUnlistenAll:
		return true
	}
	return st.Do != nil && st.Do.ListenOnly
}

// listenShared performs the LISTEN, UNLISTEN or listen-only DO block st on the shared
// listener and returns its command tag, or the error to send instead.
func (s *Session) listenShared(l *listenmux.Listener, st *sqlscan.Statement) (string, *pgerr.Error) {
	if st.Do == nil {
		return s.listenOne(l, st)
	}
	for i := range st.Do.Statements {
		if _, pe := s.listenOne(l, &st.Do.Statements[i]); pe != nil {
			return "", pe
		}
	}
	return "DO", nil
}

func (s *Session) listenOne(l *listenmux.Listener, st *sqlscan.Statement) (string, *pgerr.Error) {
	switch st.Kind {
	case sqlscan.KindListen:
		ctx, cancel := waitContext(s.srv.Config())
		err := l.Subscribe(ctx, s, strings.Clone(st.Name))
		cancel()
		if err != nil {
			return "", listenError(st.Name, s.dbName, s.srv.Config().QueryWaitTimeout, err)
		}
		s.listening = true
		return "LISTEN", nil
	case sqlscan.KindUnlisten:
		l.Unsubscribe(s, st.Name)
	case sqlscan.KindUnlistenAll:
		l.Unsubscribe(s, "")
	}
	return "UNLISTEN", nil
}

// listenError is the error a client's LISTEN on the shared listener gets when it fails:
// the server's own refusal as the server gave it (a LISTEN error, a login refused), else
// that the server could not be reached, by when (a LISTEN waits for a server that is
// down, up to query_wait_timeout) or why, with pgmux's own account in the detail.
func listenError(channel, db string, wait time.Duration, err error) *pgerr.Error {
	var pe *pgerr.Error
	if errors.As(err, &pe) && !strings.HasPrefix(pe.Code, "08") {
		return pe.AtSeverity(pgerr.SeverityError)
	}
	hint := "Retry the LISTEN once PostgreSQL accepts connections again."
	if errors.Is(err, pool.ErrWaitTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return pgerr.New(pgerr.ConnectionFailure, "LISTEN %s: could not reach the server for database %q within query_wait_timeout (%v)", channel, db, wait).
			WithDetail("%v", err).WithHint("%s", hint)
	}
	return pgerr.New(pgerr.ConnectionFailure, "LISTEN %s: could not connect to the server for database %q", channel, db).
		WithDetail("%v", err).WithHint("%s", hint)
}
