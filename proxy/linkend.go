package proxy

import "github.com/pgmux/pgmux/config"

// linkState is what decides, at a ReadyForQuery, whether a client keeps its server: pure
// input to linkEnd, so the release rule is a table test (linkend_test.go).
type linkState struct {
	idle    bool            // no request outstanding: nothing pending, no Sync missing, no answer awaited
	status  byte            // the ReadyForQuery's transaction status: 'I', 'T' or 'E'
	pinned  pinReason       // session state that keeps the server (sticky.go)
	mode    config.PoolMode // the link's pool mode
	modeNow config.PoolMode // the pool's mode now (a RELOAD may have changed it)
	force   bool            // the client asked for a real session (pgmux.pool_mode=session)
	closed  bool            // the client has gone
}

// linkOutcome is what becomes of the link.
type linkOutcome uint8

const (
	linkKeep         linkOutcome = iota // the client keeps its server
	linkRelease                         // the server goes back to its pool
	linkBadStatement                    // a transaction block in statement mode: server and client end
	linkDirtyClosed                     // the client left inside a transaction: the server is closed
)

// linkEnd applies the release rule: a server goes back to its pool only at a safe point,
// a ReadyForQuery with status 'I' and nothing outstanding, and only if no session state
// pins it and the pool mode lets it go (in session mode: when the client has left, or a
// RELOAD moved the pool out of session mode). reset says whether the server is reset on
// the way back (a session-mode client's server; server_reset_query_always adds to it).
func linkEnd(l linkState) (out linkOutcome, reset bool) {
	leaveSession := l.idle && l.status == 'I' && l.mode == config.PoolModeSession &&
		l.modeNow != config.PoolModeSession && !l.force
	switch {
	case l.idle && l.status == 'I' && l.pinned == 0 && (l.mode != config.PoolModeSession || l.closed || leaveSession):
		return linkRelease, (l.closed && l.mode == config.PoolModeSession) || leaveSession
	case l.idle && l.status != 'I' && l.mode == config.PoolModeStatement:
		return linkBadStatement, false
	case l.closed && l.idle && l.status != 'I':
		return linkDirtyClosed, false
	}
	return linkKeep, false
}
