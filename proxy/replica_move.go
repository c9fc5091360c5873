package proxy

import (
	"strings"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// A read-only transaction goes to a standby on its BEGIN. When the client sent that
// BEGIN alone, nothing else has run in the transaction yet, and PostgreSQL still lets it
// become read-write (SET TRANSACTION READ WRITE, SET transaction_read_only = off: allowed
// before the transaction's first query). A standby refuses the switch (0A000) where the
// primary allows it, and the writes after it (25006). So when the client's next request
// in that transaction may switch (sqlscan.PrimaryOnly in what it sends, or a
// statement pgmux does not know), the transaction moves: pgmux rolls it back on the
// standby (a hidden ROLLBACK, which ends the link), the request goes to the primary, and
// a hidden BEGIN with the same modes (isolation level, access, deferrability:
// sqlscan.TxModes) opens the transaction there in front of it (beginOnLink). Nothing had
// run on the standby: the client cannot tell, and the primary answers the request as a
// direct connection would. The same goes for a switch to serializable isolation, which
// a standby refuses too (0A000) where the primary takes it (sqlscan.PrimaryOnly covers
// both). Requests that only set, reset or show settings or handle savepoints (SET, SET
// LOCAL, RESET, SET TRANSACTION, SET SESSION CHARACTERISTICS, SET CONSTRAINTS, SHOW,
// SAVEPOINT, RELEASE, ROLLBACK TO:
// sqlscan.BeforeSnapshot) take no snapshot, and PostgreSQL still takes the switch after
// them: the transaction stays movable, and they run again behind the hidden BEGIN
// (settings.txReplay; a session SET among them is read back after the transaction like
// the client's own; a reset of a startup value, with the SET pgmux puts behind it:
// replayOf). Once anything else has run in the
// transaction, it stays: the switch fails there as on PostgreSQL (25001, before recovery
// is looked at), and so does a BEGIN sent with other statements in one request (not
// tracked: rare, and the whole request goes to the primary when they switch,
// routeRead).
//
// State: roFresh holds the BEGIN's modes from routeRead until a request of the
// transaction other than those starts (or the link ends); roMoved holds them from the
// move until the next server is linked. While roMoved is set the client is in a transaction no server has:
// routing sends its request to the primary (replicaOn), and pgmux's own answers give
// status 'T' (idleStatus).

// inStandbyTx handles the first message of a request inside a read-only transaction open
// on a standby: the transaction moves to the primary when the request may switch it to
// read-write while nothing that takes a snapshot has run in it (above), and a request
// that ends it and goes on is split at the end (replica_split.go); and, inside a request
// already running there, a Parse or Bind of its end (splitInRequest). done: the request
// was handled here; otherwise dispatch goes on with the message (on the primary, after a
// move).
func (s *Session) inStandbyTx(typ byte, n int) (done, skipping bool, err error) {
	fresh := s.roFresh
	s.mu.Lock()
	linked := s.server != nil && s.onReplica
	opening := s.Unsynced // the rest of the request that sent the BEGIN
	s.mu.Unlock()
	if !linked || !opening {
		s.roFresh = 0
	}
	if !linked || s.forcePrimary || s.notes.Load() != nil || s.rr.Load() != nil {
		return false, false, nil
	}
	if opening {
		if fresh == 0 && (typ == 'P' || typ == 'B') {
			return s.splitInRequest(typ, n) // replica_split.go
		}
		return false, false, nil
	}
	s.awaitReplicaUnlink(typ) // an answer still coming: its end decides
	s.mu.Lock()
	c := s.server
	inTx := c != nil && s.onReplica && (s.TxStatus == 'T' || s.TxStatus == 'E') &&
		s.Pending == 0 && !s.Unsynced && s.fo == 0
	status, pinned := s.TxStatus, s.pinned != 0
	s.mu.Unlock()
	if !inTx {
		s.roFresh = 0
		return false, false, nil
	}
	if fresh != 0 {
		s.roFresh = 0
		if status == 'T' && !pinned && opensRequest(typ) {
			if err := s.awaitRequest(); err != nil {
				return true, false, err
			}
		}
		if status == 'T' && !pinned {
			if s.mayStartReadWrite(typ, n) {
				s.moveTx(c, fresh)
				return false, false, nil
			}
			if sets, ok := s.setsOnly(typ, n); ok {
				if replay, ok := s.replayOf(sets); ok {
					s.roFresh = fresh // still movable after it
					if replay != "" {
						st := s.settingsState()
						st.txReplay = joinSQL(st.txReplay, replay)
					}
				}
			}
		}
	}
	switch typ {
	case 'Q':
		return s.splitAtEnd(c, n)
	case 'P', 'B', 'D', 'E', 'C', 'H':
		return s.splitBatchAtEnd(c, n)
	}
	return false, false, nil
}

// noteBegin records, for inStandbyTx, a request routed to a standby that is one BEGIN:
// a Query (sql), or an extended-protocol request whose one Execute is of q.
func (s *Session) noteBegin(sql string, extended bool) {
	if extended && !s.executesOnce() {
		return
	}
	if m, ok := sqlscan.BeginModes(sql); ok {
		s.roFresh = m
		if st := s.set.Load(); st != nil {
			st.txReplay = ""
		}
	}
}

// executesOnce reports whether the client's buffered extended-protocol request, from
// the current message through its Sync, executes one portal (the BEGIN routeRead read).
func (s *Session) executesOnce() bool {
	buf := s.rd.Window()
	execs := 0
	for off := 0; ; {
		typ, _, end, ok := frameAt(buf, off)
		if !ok {
			return false
		}
		off = end
		switch typ {
		case 'E':
			execs++
		case 'S':
			return execs == 1
		}
	}
}

// awaitRequest reads the client's extended-protocol request until its messages here reach
// its Sync or a Flush, which the client sends before it can expect an answer, or fill a
// buffer: a switch to read-write in a part not here yet would otherwise go unseen.
func (s *Session) awaitRequest() error {
	for s.rd.Buffered() < wire.BufSize-wire.HeaderLen {
		buf := s.rd.Window()
		for off := 0; ; {
			typ, _, end, ok := frameAt(buf, off)
			if !ok {
				break
			}
			if typ == 'S' || typ == 'H' {
				return nil
			}
			off = end
		}
		if err := s.rd.More(); err != nil {
			return err
		}
	}
	return nil
}

// opensRequest reports whether a message of type typ begins an extended-protocol request,
// which the client ends with a Sync or a Flush before it waits for an answer. A Query or a
// FunctionCall is a request of its own, answered at once: waiting for more of it hung the
// client.
func opensRequest(typ byte) bool {
	switch typ {
	case 'P', 'B', 'D', 'E', 'C':
		return true
	}
	return false
}

// mayStartReadWrite reports whether the client's request starting with the current
// message may switch its transaction to read-write: a statement it parses or binds does
// (sqlscan.PrimaryOnly), or is one whose text pgmux does not know. Only what has
// arrived of an extended-protocol request is looked at (awaitRequest waits for its Sync
// or a Flush).
func (s *Session) mayStartReadWrite(typ byte, n int) bool {
	if n > maxInspect {
		return false
	}
	if typ == 'Q' {
		m, err := s.rd.Peek(n)
		return err == nil && sqlscan.PrimaryOnly(cString(wire.Body(m)))
	}
	buf := s.rd.Window()
	parsed := map[string]bool{}
	for off := 0; ; {
		typ, body, end, ok := frameAt(buf, off)
		if !ok {
			return false
		}
		off = end
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok || sqlscan.PrimaryOnly(string(q)) {
				return true
			}
			parsed[string(name)] = true
		case 'B':
			_, name, _, ok := link.BindFields(body)
			if !ok {
				return true
			}
			if !parsed[string(name)] {
				q, known := s.stmtText(name)
				if !known || sqlscan.PrimaryOnly(q) {
					return true
				}
			}
		case 'S':
			return false
		}
	}
}

// moveTx ends the fresh read-only transaction on standby c (a hidden ROLLBACK; the link
// ends at its answer) and leaves its modes in roMoved for the next server, the
// primary's. Should the link not end (a settings read-back that could not go out), the
// transaction is begun again on c and the request runs there as before.
func (s *Session) moveTx(c *pool.Conn, m sqlscan.TxModes) {
	if err := s.sendHidden(c, "ROLLBACK", true); err != nil {
		return // the forward of the request meets the broken connection
	}
	s.awaitSplitUnlink(c)
	s.mu.Lock()
	if s.server == c {
		sql := s.movedBegin(m)
		s.mu.Unlock()
		_ = s.sendHidden(c, sql, false)
		return
	}
	if s.server == nil && s.fo == 0 {
		s.roMoved = m
	}
	s.mu.Unlock()
}

// sendHidden writes a Query of pgmux's own to the linked server c, whose answer the
// client does not see; with settles, the link may end at its ReadyForQuery.
func (s *Session) sendHidden(c *pool.Conn, sql string, settles bool) error {
	if st := linkOf(c); st != nil && (s.prep == prepCache || s.readsLater()) {
		st.wmu.Lock()
		defer st.wmu.Unlock()
	}
	s.mu.Lock()
	if s.server != c {
		s.mu.Unlock()
		return errLostMeanwhile
	}
	s.q.push(&expect{Kind: 'Q', Hide: true, Settles: settles})
	s.mu.Unlock()
	if err := c.Wr.Write(wire.Query(nil, sql)); err != nil {
		return err
	}
	return c.Wr.Flush()
}

// beginOnLink opens on freshly linked server c the client's transaction that moved off
// a standby (moveTx), in front of the request. s.mu is held.
func (s *Session) beginOnLink(c *pool.Conn) {
	if s.roMoved == 0 {
		return
	}
	m := s.roMoved
	s.roMoved = 0
	// In the client's transaction from here on: the request behind the BEGIN is
	// forwarded as inside one (a reset's re-set takes no snapshot: resetInPlace).
	s.TxStatus = 'T'
	s.q.push(&expect{Kind: 'Q', Hide: true})
	_ = c.Wr.Write(wire.Query(nil, s.movedBegin(m))) // a failed write surfaces at the client's flush
}

// movedBegin is the hidden Query that opens the client's transaction with modes m again
// after the hidden ROLLBACK of moveTx: the BEGIN, then the SETs that had run in it. The
// settings those SETs name are marked touched: a session SET among them is read back
// once the transaction ends, as the client's own was. s.mu is held.
func (s *Session) movedBegin(m sqlscan.TxModes) string {
	sql := m.SQL()
	st := s.set.Load()
	if st == nil || st.txReplay == "" {
		return sql
	}
	sql = joinSQL(sql, st.txReplay)
	if v := link.ClassifyText(st.txReplay, true); v.Set != nil {
		st.Touch(v.Set)
	}
	st.txReplay = ""
	return sql
}

// replayOf is what runs the statements sets again behind the BEGIN on the primary: sets,
// with a reset of a setting the client gave at startup followed by the SET of its startup
// value (link.ResetInPlace, in a transaction block), as pgmux ran them on the standby.
// ok is false when that re-set takes a snapshot (a DO block: a list value no SET can
// write, such as an empty search_path), after which PostgreSQL refuses the switch
// (25001): the transaction can no longer move.
func (s *Session) replayOf(sets string) (replay string, ok bool) {
	st := s.set.Load()
	if st == nil || sets == "" {
		return sets, true
	}
	if v := link.ClassifyText(sets, true); v.Set == nil || len(st.Resets(v.Set)) == 0 {
		return sets, true
	}
	m, _, _, _ := link.ResetInPlace(&st.Settings, sets, true)
	if m == nil {
		return "", false
	}
	replay = cString(wire.Body(m))
	return replay, !strings.Contains(replay, link.InPlaceTag)
}

// joinSQL joins two statement lists into one.
func joinSQL(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// setsOnly reports whether the client's request starting with the current message (all
// of it here) only sets or shows settings (sqlscan.BeforeSnapshot: what it parses, binds
// and executes), with the SETs it executes, for movedBegin.
func (s *Session) setsOnly(typ byte, n int) (sets string, ok bool) {
	if n > maxInspect {
		return "", false
	}
	if typ == 'Q' {
		m, err := s.rd.Peek(n)
		if err != nil {
			return "", false
		}
		return sqlscan.BeforeSnapshot(cString(wire.Body(m)))
	}
	buf := s.rd.Window()
	parsed := map[string]string{}
	portals := map[string]string{}
	for off := 0; ; {
		typ, body, end, ok := frameAt(buf, off)
		if !ok {
			return "", false
		}
		off = end
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok {
				return "", false
			}
			if _, ok := sqlscan.BeforeSnapshot(string(q)); !ok {
				return "", false // its Parse takes a snapshot, or its Execute would
			}
			parsed[string(name)] = string(q)
		case 'B':
			portal, name, _, ok := link.BindFields(body)
			if !ok {
				return "", false
			}
			q, ok := parsed[string(name)]
			if !ok {
				if q, ok = s.stmtText(name); !ok {
					return "", false
				}
				if _, ok := sqlscan.BeforeSnapshot(q); !ok {
					return "", false
				}
			}
			portals[string(portal)] = q
		case 'E':
			portal, _, err := wire.CString(body)
			q, ok := portals[string(portal)]
			if err != nil || !ok {
				return "", false
			}
			set, _ := sqlscan.BeforeSnapshot(q)
			sets = joinSQL(sets, set)
		case 'D', 'C', 'H':
		case 'S':
			return sets, true
		default:
			return "", false
		}
	}
}
