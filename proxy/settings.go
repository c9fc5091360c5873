package proxy

import (
	"sync/atomic"

	"github.com/pgmux/pgmux/proxy/link"
)

// Session settings follow the client from server to server instead of pinning it.
//
// A client's settings are its startup values (the startup packet and its options: what
// RESET returns to on a direct connection) and the values it set since. pgmux learns the
// latter from the server rather than from the SQL text: a request that names a setting
// (SET, RESET, RESET ALL, DISCARD ALL, set_config(name, ..., false), or a ParameterStatus
// the server sent while answering the client) marks the name touched, and once the
// server is outside a transaction pgmux reads the touched names back with
// current_setting. PostgreSQL has then applied everything the text cannot tell: a SET
// in a transaction that rolled back, SET LOCAL and set_config(..., true) ending with their
// transaction, a SET in a statement that failed, DEFAULT, FROM CURRENT, expressions, and
// the spelling the server normalises values to. The read-back goes out right behind a
// simple Query that will end outside a transaction (pipelined: no round trip); otherwise
// it goes out when the server reports ReadyForQuery 'I' with nothing else outstanding,
// before the server is released (one round trip between pgmux and the server, not seen
// by the client). A request that touches nothing costs nothing.
//
// Each server connection records the values pgmux knows it has beyond its defaults
// (serverState.set), and keeps them when it goes back to the pool (forgotten only when
// the pool's reset query has run there: serverState.ServerReset). When a client gets a
// server, the differences between the two are sent first, as hidden set_config and RESET
// queries in the same write as the client's first message. Clients with the same settings
// (every connection of one app, usually) therefore pay nothing after the first time.
//
// RESET on a direct connection returns a parameter to its startup value; on a server
// connection it returns to the server's default. After a request with RESET, RESET ALL,
// DISCARD ALL or SET ... TO DEFAULT of a parameter the client gave at startup, pgmux sends
// a hidden query right behind it that sets the startup value again where the reset took
// effect, so SHOW and current_setting() agree with a direct session from the client's
// next request on. SET LOCAL ... TO DEFAULT gets the startup value for the transaction
// alone (SET LOCAL), and nothing read back: the session's value comes back at its end.

// unknownValue is link.UnknownValue: a setting's value on a server that is not known.
const unknownValue = link.UnknownValue

// setOp and setTouch, what a request's text does to settings, are package link's
// (link/pin.go).
type (
	setOp    = link.SetOp
	setTouch = link.SetTouch
)

// noRequest clears what the previous request did to settings before the next message is
// looked at (nil: the client has no settings).
func (st *settings) noRequest() {
	if st != nil {
		st.req, st.reqBegin, st.reqEnd = nil, false, false
	}
}

// settings is a client's session settings; made when it first has any. The values and
// the rules that replay them (startup values, values set since, the names touched and
// read back, Commit, SyncSQL, ...) are link.Settings, pure code (link/settings.go); what
// is here is the link's side: the request being forwarded, and the hidden queries in
// flight. Guarded by Session.mu, except the fields the session goroutine alone uses
// (noted).
type settings struct {
	link.Settings

	// Session goroutine only: what the request being forwarded and the client's unnamed
	// statement do to settings, and whether that request begins or ends a transaction.
	req      *setTouch
	unnamed  *setTouch
	reqBegin bool
	reqEnd   bool
	// txReplay: the SET and SET LOCAL statements run in a read-only transaction on a
	// standby while nothing had taken a snapshot in it, run again on the primary should
	// the transaction move there (replica_move.go).
	txReplay string
	// shared: Start only, shared by clients that have sent nothing since login
	// (Session.sharedStart); read-only.
	shared bool
	// from: for a client's own copy, the shared settings it was made from, which it
	// takes back when it parks with nothing of its own in them (Session.unshareSettings).
	from *settings

	// Guarded by Session.mu: the hidden queries that set startup values again, to follow
	// the Query being forwarded, or the Sync that ends the extended-protocol batch.
	reapplyQuery  string
	reapplyAtSync []reapplyAt
	reapplying    int // those sent and not yet answered: ParameterStatus is held back
	// out mirrors reapplying for the session goroutine's check before each message
	// (awaitReapply), without s.mu.
	out atomic.Int32
	// retrySQL: a re-set that failed after its reset committed, to be sent again by the
	// session goroutine before the client's next message (awaitReapply).
	retrySQL string
	reqErr   bool // the client's request with the reset failed: it may have rolled back
}

// reapplyAt is the re-set of startup values a reset in an extended-protocol batch needs
// after its Sync: sel, which sets them where the reset took effect (link.ReapplySQL, a
// SELECT: it takes a snapshot), or set, their SETs, which take none, where the reset
// surely took effect in the transaction block the batch leaves open (settingsBefore).
type reapplyAt struct {
	sel, set string
	execs    int // the batch's Executes since the reset's Bind
}

// pristine reports whether st holds nothing but its startup values: no value set since,
// nothing in flight or held for the link, nothing the client's unnamed statement does.
func (st *settings) pristine() bool {
	return st.Settings.Pristine() && st.req == nil && st.unnamed == nil && !st.reqBegin && !st.reqEnd &&
		st.txReplay == "" && st.reapplyQuery == "" && len(st.reapplyAtSync) == 0 && st.reapplying == 0 &&
		st.out.Load() == 0 && st.retrySQL == "" && !st.reqErr
}

// pure returns st's values and rules, nil for a client without settings (whose SyncSQL
// resets the server's to their defaults, and whose Refused does nothing).
func (st *settings) pure() *link.Settings {
	if st == nil {
		return nil
	}
	return &st.Settings
}

// syncSQL appends the hidden queries that give server x the client's settings
// (link.Settings.SyncSQL on what x is known to have).
func (st *settings) syncSQL(b []byte, x *serverState, names []setOp) ([]byte, []setOp) {
	return st.pure().SyncSQL(b, &x.set, names)
}

// commit applies the read-back received to the client's settings and to what x is known
// to have (link.Settings.Commit). s.mu is held.
func (st *settings) commit(x *serverState, status byte, gen uint32) {
	st.Commit(&x.set, status, gen)
}

// forget marks the touched settings unknown on server x, when the client leaves before
// they were read. s.mu is held.
func (st *settings) forget(x *serverState) { st.Forget(&x.set) }

// synced records the server's answer to a hidden query of syncSQL.
func (x *serverState) synced(op setOp) { link.Synced(&x.set, op) }
