package proxy

import (
	"bytes"
	"strings"
	"sync"
	"unsafe"

	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// UNLISTEN and DISCARD ALL that reach a server. A client subscribed on the shared
// listener (listen.go) whose UNLISTEN, UNLISTEN * or DISCARD ALL goes to a server — inside
// a transaction block, mixed with other statements, sent in the extended protocol, or
// while it is pinned — must stop receiving exactly when PostgreSQL would stop: when that
// statement's transaction commits. LISTEN and UNLISTEN are transactional (async.c keeps
// them as pending actions applied at commit, dropped at abort), and DISCARD ALL runs
// UNLISTEN *.
//
// So such a statement is noted when it is sent (sent), moves to ran when the server
// completes it (its CommandComplete tag, in order), and its subscriptions end when its
// transaction commits: at a CommandComplete "COMMIT", or at a ReadyForQuery 'I' with no
// error since the request began (autocommit, an implicit transaction, the extended
// protocol's up to its Sync). A "ROLLBACK" or an error before ReadyForQuery 'I' drops
// them: the subscription stays. A ROLLBACK TO SAVEPOINT drops only those after the
// savepoint (listen_savepoint.go). The shared
// subscriptions end right before the client's ReadyForQuery goes out, after the fence
// (listen_fence.go): notifications committed before the request still come first.
//
// An extended-protocol statement is known from its Parse text, carried to its portal at
// Bind and noted at the portal's Execute (as stmtclear_ext.go does for DEALLOCATE).
// Only clients that have subscribed are tracked (the state lives in their notifyBox), and
// a statement parsed before the client's first shared LISTEN is not.

// unlistenAct is what one completed statement does to the client's shared subscriptions.
type unlistenAct struct {
	tag      string   // the statement's CommandComplete tag: UNLISTEN, DISCARD ALL or DO, or op's
	channels []string // the channels it ends, when not all
	all      bool
	op       txOp   // opUnlisten, or a statement that bounds UNLISTENs (listen_savepoint.go)
	name     string // the savepoint's name
}

// unlistenState is a listening client's UNLISTENs on their way through a server.
//
// Owners: stmts and portals belong to the session goroutine; mu guards the rest, shared
// by the session goroutine (noting statements sent) and the server's reader.
type unlistenState struct {
	stmts, portals map[string][]unlistenAct

	mu     sync.Mutex
	sent   []unlistenAct   // sent, not yet completed by the server
	ran    []unlistenAct   // completed in the transaction still open
	marks  []savepointMark // the open transaction's savepoints, oldest first
	commit []unlistenAct   // committed: to end before the client's ReadyForQuery
	failed bool            // an error since the last ReadyForQuery 'I'
}

// unlistenActs returns what the statements stmts do to shared subscriptions when they
// complete; names are cloned (the text may be a view of a read buffer). With bounds,
// the statements that bound UNLISTENs (savepoints, the transaction's end) are in too.
func unlistenActs(stmts []sqlscan.Statement, bounds bool) []unlistenAct {
	var acts []unlistenAct
	for i := range stmts {
		switch st := &stmts[i]; {
		case st.Kind == sqlscan.KindUnlisten:
			acts = append(acts, unlistenAct{tag: "UNLISTEN", channels: []string{strings.Clone(st.Name)}})
		case st.Kind == sqlscan.KindUnlistenAll:
			acts = append(acts, unlistenAct{tag: "UNLISTEN", all: true})
		case st.Kind == sqlscan.KindDiscardAll:
			acts = append(acts, unlistenAct{tag: "DISCARD ALL", all: true})
		case st.Do != nil && st.Do.Straight:
			inner := unlistenActs(st.Do.Statements, false)
			if len(inner) == 0 {
				continue
			}
			do := unlistenAct{tag: "DO"}
			for _, a := range inner {
				do.all = do.all || a.all
				do.channels = append(do.channels, a.channels...)
			}
			acts = append(acts, do)
		case bounds:
			if a, ok := txAct(st); ok {
				acts = append(acts, a)
			}
		}
	}
	return acts
}

// unlistenQueued notes the UNLISTENs of a listening client's simple Query q (a view of
// the read buffer, not kept), sent to its server, and the statements that bound them.
// Session goroutine.
func (s *Session) unlistenQueued(q string) {
	acts := unlistenActs(sqlscan.Scan(q), true)
	if len(acts) == 0 {
		return
	}
	u := s.notifyBox().unlisten()
	u.mu.Lock()
	u.sent = append(u.sent, acts...)
	u.mu.Unlock()
}

// trackUnlisten follows a listening client's extended-protocol messages: a Parse of
// UNLISTEN, UNLISTEN * or DISCARD ALL is remembered under its statement name, a Bind
// carries it to the portal, and the portal's Execute notes it as sent. Session
// goroutine, before the message is handled; it does not consume it.
func (s *Session) trackUnlisten(b *notifyBox, typ byte, n int) error {
	if typ != 'P' && typ != 'B' && typ != 'E' && typ != 'C' {
		return nil
	}
	u := b.u
	if u == nil && typ != 'P' {
		return nil // nothing parsed that unlistens
	}
	m, err := s.rd.Peek(n)
	if err != nil {
		return err
	}
	body := wire.Body(m)
	switch typ {
	case 'P':
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			return nil
		}
		name, query := f.First(body), f.Second(body)
		var acts []unlistenAct
		if len(query) > 0 {
			q := unsafe.String(&query[0], len(query))
			if s.lead(q).Interesting || savepointWord(q) {
				if sts := sqlscan.Scan(q); len(sts) == 1 {
					acts = unlistenActs(sts, true)
				}
			}
		}
		switch {
		case len(acts) > 0:
			u = b.unlisten()
			if u.stmts == nil {
				u.stmts = make(map[string][]unlistenAct)
			}
			u.stmts[string(name)] = acts
		case u != nil && len(u.stmts) > 0:
			delete(u.stmts, string(name))
		}
	case 'B':
		f := s.fieldsOf(body, s.rd.Seq())
		if !f.OK() {
			return nil
		}
		portal, name := f.First(body), f.Second(body)
		if acts := u.stmts[string(name)]; acts != nil {
			if u.portals == nil {
				u.portals = make(map[string][]unlistenAct)
			}
			u.portals[string(portal)] = acts
		} else if len(u.portals) > 0 {
			delete(u.portals, string(portal))
		}
	case 'E':
		portal, _, err := wire.CString(body)
		if err != nil {
			return nil
		}
		if acts := u.portals[string(portal)]; acts != nil {
			u.mu.Lock()
			u.sent = append(u.sent, acts...)
			u.mu.Unlock()
		}
	case 'C':
		if len(body) < 2 {
			return nil
		}
		name, _, err := wire.CString(body[1:])
		if err != nil {
			return nil
		}
		if body[0] == 'S' {
			delete(u.stmts, string(name))
		} else {
			delete(u.portals, string(name))
		}
	}
	return nil
}

// unlisten returns b's UNLISTEN tracking, making it on first use. Session goroutine;
// the server's reader reads b.u only after a statement was noted (under b.umu).
func (b *notifyBox) unlisten() *unlistenState {
	b.umu.Lock()
	defer b.umu.Unlock()
	if b.u == nil {
		b.u = new(unlistenState)
	}
	return b.u
}

// unlistenState returns the tracking the server's reader must look at, or nil.
func (s *Session) unlistenTracked() *unlistenState {
	b := s.notes.Load()
	if b == nil {
		return nil
	}
	b.umu.Lock()
	defer b.umu.Unlock()
	return b.u
}

// unlistenCC reads the tag of the client's CommandComplete (not consumed): a statement
// noted as sent has completed, or the transaction committed or rolled back. Server's
// reader.
func (s *Session) unlistenCC(u *unlistenState, rd *wire.Reader, n int) error {
	u.mu.Lock()
	watching := len(u.sent) > 0 || len(u.ran) > 0 || len(u.marks) > 0
	u.mu.Unlock()
	if !watching {
		return nil
	}
	m, err := rd.Peek(n)
	if err != nil {
		return err
	}
	tag := wire.Body(m)
	if i := bytes.IndexByte(tag, 0); i >= 0 {
		tag = tag[:i]
	}
	u.completeTag(string(tag))
	return nil
}

// completeTag takes the tag of a CommandComplete the client is sent: the next statement
// noted as sent may have completed, or the transaction committed or rolled back.
func (u *unlistenState) completeTag(tag string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case len(u.sent) > 0 && u.sent[0].answeredBy(tag):
		a := u.sent[0]
		u.sent = u.sent[1:]
		u.completed(a, tag)
	case tag == "COMMIT": // not noted (sent while nothing was pending)
		u.ended(true)
	case tag == "ROLLBACK":
		u.ended(false)
	}
}

// answeredBy reports whether tag is the CommandComplete of a's statement: a COMMIT of a
// failed transaction answers ROLLBACK.
func (a *unlistenAct) answeredBy(tag string) bool {
	return tag == a.tag || a.op == opCommit && tag == "ROLLBACK"
}

// unlistenFailed notes an error answering the client: the statements of its request
// not yet completed never will be, and an implicit transaction rolls back. Server's
// reader.
func (u *unlistenState) unlistenFailed() {
	u.mu.Lock()
	u.failed = true
	u.sent = nil
	u.mu.Unlock()
}

// ready takes the client's ReadyForQuery status and returns the subscriptions to end
// before it goes out; quiet: nothing else is outstanding on the link. Server's reader.
func (u *unlistenState) ready(status byte, quiet bool) []unlistenAct {
	u.mu.Lock()
	defer u.mu.Unlock()
	if status == 'I' {
		u.ended(!u.failed)
		u.failed = false
		if quiet {
			u.sent = nil // statements an error made the server skip
		}
	}
	acts := u.commit
	u.commit = nil
	return acts
}

// endSubscriptions ends the shared subscriptions acts name.
func (s *Session) endSubscriptions(acts []unlistenAct) {
	l := s.srv.listenerFor(s.entry)
	for _, a := range acts {
		if a.all {
			l.Unsubscribe(s, "")
			continue
		}
		for _, ch := range a.channels {
			l.Unsubscribe(s, ch)
		}
	}
}
