package link

import "github.com/pgmux/pgmux/config"

// State is what decides, at a ReadyForQuery, whether a client keeps its server: pure
// input to End, so the release rule is a table test (end_test.go).
type State struct {
	Idle    bool            // no request outstanding: nothing pending, no Sync missing, no answer awaited
	Status  byte            // the ReadyForQuery's transaction status: 'I', 'T' or 'E'
	Pinned  bool            // session state keeps the server (proxy/sticky.go)
	Mode    config.PoolMode // the link's pool mode
	ModeNow config.PoolMode // the pool's mode now (a RELOAD may have changed it)
	Force   bool            // the client asked for a real session (pgmux.pool_mode=session)
	Closed  bool            // the client has gone
}

// Outcome is what becomes of the link.
type Outcome uint8

const (
	Keep         Outcome = iota // the client keeps its server
	Release                     // the server goes back to its pool
	BadStatement                // a transaction block in statement mode: server and client end
	DirtyClosed                 // the client left inside a transaction: the server is closed
)

// End applies the release rule: a server goes back to its pool only at a safe point, a
// ReadyForQuery with status 'I' and nothing outstanding, and only if no session state
// pins it and the pool mode lets it go (in session mode: when the client has left, or a
// RELOAD moved the pool out of session mode). reset says whether the server is reset on
// the way back (a session-mode client's server; server_reset_query_always adds to it).
func End(l State) (out Outcome, reset bool) {
	leaveSession := l.Idle && l.Status == 'I' && l.Mode == config.PoolModeSession &&
		l.ModeNow != config.PoolModeSession && !l.Force
	switch {
	case l.Idle && l.Status == 'I' && !l.Pinned && (l.Mode != config.PoolModeSession || l.Closed || leaveSession):
		return Release, (l.Closed && l.Mode == config.PoolModeSession) || leaveSession
	case l.Idle && l.Status != 'I' && l.Mode == config.PoolModeStatement:
		return BadStatement, false
	case l.Closed && l.Idle && l.Status != 'I':
		return DirtyClosed, false
	}
	return Keep, false
}
