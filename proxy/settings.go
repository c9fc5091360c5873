package proxy

import (
	"strings"
	"sync/atomic"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
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
// next request on.

// unknownValue marks a setting whose value on a server is not known (a hidden query
// failed, or the client left before its changes were read): it matches no client value,
// so the next client sets or resets it.
const unknownValue = "\x00"

// setOp and setTouch, what a request's text does to settings, are package link's
// (link/pin.go).
type (
	setOp    = link.SetOp
	setTouch = link.SetTouch
)

// touched is a setting the linked server may have changed since it was last read.
//
// Read-backs can overlap: one goes out behind a request, and the client's next request
// naming the same setting may reach the server before its answer is back. A read-back's
// value of a name then is not final: it is kept (readGen, readVal) as what the server had
// at that point, and only the answer to a read-back sent after the last request naming it
// decides the client's value. What those later requests did (set, reset or both) is told
// by setGen and resetGen against readGen.
type touched struct {
	name string
	gen  uint32 // settings.gen when last named
	// setGen and resetGen: settings.gen when a request last set it, or reset it (RESET,
	// RESET ALL, DISCARD ALL, SET ... TO DEFAULT); 0 when none did.
	setGen, resetGen uint32
	// readGen: the gen of the newest read-back answered for it whose value was not final
	// (readVal, readNull); 0 when none was.
	readGen  uint32
	readVal  string
	readNull bool
}

// sinceRead reports whether requests since the newest value known for t set it and
// whether they reset it, and that value: the one read, or else the client's.
func (st *settings) sinceRead(t *touched, name string) (set, reset bool, prev string, hasPrev bool) {
	if t.readGen > 0 {
		prev, hasPrev = t.readVal, !t.readNull
	} else {
		prev, hasPrev = st.effective(name)
	}
	return t.setGen > t.readGen, t.resetGen > t.readGen, prev, hasPrev
}

// readVal is one row of a read-back.
type readVal struct {
	name, value string
	null        bool
}

// settings is a client's session settings; made when it first has any. Guarded by
// Session.mu, except the fields the session goroutine alone uses (noted).
type settings struct {
	// start are the startup values, lower-case names, as the client sent them. The array
	// may be shared with other clients (sharedStart): never changed in place.
	start pool.Params
	own   pool.Params // values set since, as the server reports them

	touched []touched
	gen     uint32
	rows    []readVal // the read-back being received

	// Session goroutine only: what the request being forwarded and the client's unnamed
	// statement do to settings, and whether that request begins or ends a transaction.
	req      *setTouch
	unnamed  *setTouch
	reqBegin bool
	reqEnd   bool
	// shared: start only, shared by clients that have sent nothing since login
	// (Session.sharedStart); read-only.
	shared bool

	// Guarded by Session.mu: the hidden queries that set startup values again, to follow
	// the Query being forwarded, or the Sync that ends the extended-protocol batch.
	reapplyQuery  string
	reapplyAtSync []string
	reapplying    int // those sent and not yet answered: ParameterStatus is held back
	// out mirrors reapplying for the session goroutine's check before each message
	// (awaitReapply), without s.mu.
	out atomic.Int32
	// retrySQL: a re-set that failed after its reset committed, to be sent again by the
	// session goroutine before the client's next message (awaitReapply).
	retrySQL      string
	reapplyFailed bool // one failed since the last read-back: the server's values are not known
	// resetStood: one failed outside a transaction block (a cancel meant for another
	// client's query can land on it), so the reset before it stands and the value read
	// back is the server's default, whatever the client had before.
	resetStood bool
	reqErr     bool // the client's request with the reset failed: it may have rolled back
	readFailed bool // the read-back being received failed (a cancel, a timeout)
	readFails  int  // read-backs failed in a row
}

// maxReadFails is how many read-backs in a row may fail before pgmux gives up on the
// touched settings: the server's values become unknown (the next client of it sets or
// resets them) and the client keeps the values it had.
const maxReadFails = 3

// effective returns the client's value of name: set since startup, else from startup.
func (st *settings) effective(name string) (string, bool) {
	if v, ok := st.own.Get(name); ok {
		return v, true
	}
	return st.start.Get(name)
}

// touch marks the settings a request names, resolving RESET ALL to every setting the
// client has. s.mu is held.
func (st *settings) touch(t *setTouch) {
	st.gen++
	if t.All {
		for _, p := range st.own {
			st.mark(p.Name, true)
		}
		for _, p := range st.start {
			st.mark(p.Name, true)
		}
		for i := range st.touched {
			st.touched[i].resetGen, st.touched[i].gen = st.gen, st.gen
		}
	}
	for _, op := range t.Ops {
		st.mark(op.Name, op.Reset)
	}
}

func (st *settings) mark(name string, reset bool) {
	i := st.find(name)
	if i < 0 {
		st.touched = append(st.touched, touched{name: name})
		i = len(st.touched) - 1
	}
	t := &st.touched[i]
	t.gen = st.gen
	if reset {
		t.resetGen = st.gen
	} else {
		t.setGen = st.gen
	}
}

// find returns the index of name in touched, or -1.
func (st *settings) find(name string) int {
	for i := range st.touched {
		if st.touched[i].name == name {
			return i
		}
	}
	return -1
}

// markReported marks a reported parameter the server changed while answering the client
// (by a function, say), unless the request already named it.
func (st *settings) markReported(name string) {
	lower := strings.ToLower(name)
	if st.find(lower) >= 0 {
		return
	}
	st.gen++
	st.touched = append(st.touched, touched{name: strings.Clone(lower), gen: st.gen, setGen: st.gen})
}

// resets lists the startup settings a request resets, for the hidden query that sets
// the startup value again.
func (st *settings) resets(t *setTouch) []setOp {
	var out []setOp
	for _, p := range st.start {
		if t.All {
			out = append(out, setOp{Name: p.Name})
			continue
		}
		for _, op := range t.Ops {
			if op.Reset && op.Name == p.Name {
				out = append(out, setOp{Name: p.Name})
				break
			}
		}
	}
	return out
}

// reapplySQL sets startup values again where the reset took effect: where the value is no
// longer one set in the session (when the reset rolled back, it still is). It reads
// pg_settings, which costs about a millisecond of server time, only after a reset of a
// startup value. Custom settings are not in pg_settings: they are set again always.
func (st *settings) reapplySQL(ops []setOp) string {
	var b strings.Builder
	b.WriteString("SELECT pg_catalog.set_config(v.n, v.b, false) FROM (VALUES ")
	for i, op := range ops {
		if i > 0 {
			b.WriteString(", ")
		}
		start, _ := st.start.Get(op.Name)
		b.WriteString("(" + sqlscan.QuoteLiteral(op.Name) + ", " + sqlscan.QuoteLiteral(start) + ")")
	}
	b.WriteString(") v(n, b) WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_settings s" +
		" WHERE pg_catalog.lower(s.name) = v.n AND s.source = 'session')")
	return b.String()
}

// readSQL reads the touched settings back.
func (st *settings) readSQL() string {
	var b strings.Builder
	b.WriteString("SELECT v.n, pg_catalog.current_setting(v.n, true) FROM (VALUES ")
	for i, t := range st.touched {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + sqlscan.QuoteLiteral(t.name) + ")")
	}
	b.WriteString(") v(n)")
	return b.String()
}

// commit applies a read-back that ended with status to the client's settings and to
// what pgmux knows of the server (x); gen is settings.gen when it was sent. Inside a
// transaction the values are not final and the names stay touched; so does a name that a
// request named after the read-back went out (its value here is kept for the next one).
// s.mu is held.
func (st *settings) commit(x *serverState, status byte, gen uint32) {
	rows := st.rows
	st.rows = nil
	if st.readFailed {
		st.readFailed = false
		if st.readFails++; st.readFails >= maxReadFails {
			st.readFails = 0
			st.forget(x)
		}
		return
	}
	st.readFails = 0
	if status != 'I' {
		return
	}
	for _, r := range rows {
		i := st.find(r.name)
		if i < 0 {
			// Decided by an earlier read-back, and named by no request since: this one,
			// sent before that one was answered, has nothing newer to say.
			continue
		}
		t := &st.touched[i]
		if t.gen > gen {
			// A request naming it went out behind this read-back: not final.
			if gen > t.readGen {
				t.readGen, t.readVal, t.readNull = gen, r.value, r.null
			}
			continue
		}
		set, reset, prev, hasPrev := st.sinceRead(t, r.name)
		start, hasStart := st.start.Get(r.name)
		switch {
		case r.null: // no such setting
			st.own.Delete(r.name)
			x.set.Delete(r.name)
		case reset && !set && !(hasPrev && prev == r.value && !st.resetStood):
			// Reset, and not rolled back (nor reset to the value it had).
			st.own.Delete(r.name)
			switch {
			case hasStart && st.reapplyFailed:
				x.set.Set(r.name, unknownValue) // the startup value may not be back
			case hasStart:
				x.set.Set(r.name, start) // as set again after the reset
			default:
				x.set.Delete(r.name) // back at the server's default
			}
		default:
			// Set (or set and reset: the value read is taken as it is), or a reset that
			// rolled back.
			if hasStart && start == r.value {
				st.own.Delete(r.name)
			} else {
				st.own.Set(r.name, r.value)
			}
			x.set.Set(r.name, r.value)
		}
	}
	st.reapplyFailed, st.resetStood = false, false
	kept := st.touched[:0]
	for _, t := range st.touched {
		if t.gen > gen {
			kept = append(kept, t)
		}
	}
	st.touched = kept
}

// forget marks the touched settings unknown on server x, when the client leaves before
// they were read: the next client of x sets or resets them. s.mu is held.
func (st *settings) forget(x *serverState) {
	for _, t := range st.touched {
		x.set.Set(t.name, unknownValue)
	}
	st.touched = st.touched[:0]
	st.rows = nil
}

// syncSQL appends the hidden queries that give server x the client's settings. Each is
// one Query, so one refused value does not undo the others; names lists each query's
// setting, in order. What x has for those names is unknown until the server answers
// (synced): a link that ends before leaves them unknown, and the next client of x sets
// or resets them.
func (st *settings) syncSQL(b []byte, x *serverState, names []setOp) ([]byte, []setOp) {
	want := func(p pool.Param) {
		if have, ok := x.set.Get(p.Name); ok && have == p.Value {
			return
		}
		b = wire.Query(b, setConfigSQL(p.Name, p.Value))
		names = append(names, setOp{Name: p.Name, Value: p.Value})
		x.set.Set(p.Name, unknownValue)
	}
	if st != nil {
		for _, p := range st.own {
			want(p)
		}
		for _, p := range st.start {
			if _, ok := st.own.Get(p.Name); !ok {
				want(p)
			}
		}
	}
	for i := range x.set {
		name := x.set[i].Name
		if st != nil {
			if _, ok := st.effective(name); ok {
				continue
			}
		}
		b = wire.Query(b, "RESET "+sqlscan.QuoteIdent(name))
		names = append(names, setOp{Name: name, Reset: true})
		x.set[i].Value = unknownValue
	}
	return b, names
}

// synced records the server's answer to a hidden query of syncSQL: x now has op's value,
// or its default after a RESET.
func (x *serverState) synced(op setOp) {
	if op.Reset {
		x.set.Delete(op.Name)
		return
	}
	x.set.Set(op.Name, op.Value)
}

// refused drops a value the server will not take from the client's settings: on a
// direct connection its SET would have failed, or its login.
func (st *settings) refused(name string) {
	if st != nil {
		st.own.Delete(name)
		if _, ok := st.start.Get(name); ok {
			st.start = st.start.Clone() // the array may be shared
			st.start.Delete(name)
		}
	}
}
