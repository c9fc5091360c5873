package proxy

import (
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// The link's side of settings (settings.go): the hidden queries that give a server the
// client's settings, set startup values again after a reset, and read changed settings
// back, and what their answers mean. Each is marked in its expect by its kind
// (link.SetSync, link.SetSyncReset, link.SetReapply, link.SetRead).

// settingsState returns the client's settings, making them on first use.
func (s *Session) settingsState() *settings {
	st := s.set.Load()
	if st != nil && !st.shared {
		return st
	}
	if st == nil {
		s.set.CompareAndSwap(nil, &settings{})
	} else {
		s.set.CompareAndSwap(st, &settings{Settings: link.Settings{Start: st.Start}, from: st})
	}
	return s.set.Load()
}

// noteRequest records what the message being forwarded does to settings. Session
// goroutine only; a client that never names a setting makes nothing here.
func (s *Session) noteRequest(t *setTouch, begin, end bool) {
	if t == nil && s.set.Load() == nil {
		return
	}
	st := s.settingsState()
	st.req, st.reqBegin, st.reqEnd = t, begin, end
}

// readsLater reports whether the server's reader may send a read-back itself (at
// ReadyForQuery 'I'); the session then holds the connection's write lock for every
// write (relay.go). In session mode read-backs only follow the client's queries.
func (s *Session) readsLater() bool { return s.mode != config.PoolModeSession }

// syncSettings queues the hidden queries that give server c the client's settings, in
// the write that carries the client's first message. s.mu is held; c is freshly linked.
func (s *Session) syncSettings(c *pool.Conn) {
	x := s.stateOf(c)
	st := s.set.Load()
	if st != nil {
		st.reapplying, st.retrySQL = 0, "" // a broken link's hidden queries went with it
		st.DropRead()
		st.out.Store(0)
	}
	if st == nil && len(x.set) == 0 {
		return
	}
	b, names := st.syncSQL(nil, x, nil)
	if len(names) == 0 {
		return
	}
	for _, op := range names {
		kind := link.SetSync
		if op.Reset {
			kind = link.SetSyncReset
		}
		s.q.push(&expect{Kind: 'Q', Hide: true, Setting: kind, Stmt: op.Name, Val: op.Value})
	}
	_ = c.Wr.Write(b) // a failed write surfaces when the client's message is flushed
}

// settingsBefore marks the settings the message about to be forwarded names, before the
// server can answer it.
//
// The re-set after a reset in an extended-protocol batch goes out behind its Sync, when
// the server's answer to the batch is not known yet. Where the reset may not have taken
// effect (the batch failed outside a transaction block, or a statement after it rolled
// it back), setting the startup value would overwrite the client's: so it is a SELECT
// that sets the value only where the reset took effect (link.ReapplySQL). That takes a
// snapshot, after which PostgreSQL refuses SET TRANSACTION READ WRITE or ISOLATION LEVEL
// (25001), where the client's RESET took none. So where the batch runs inside a
// transaction block (status 'T', nothing outstanding) and nothing but the reset's own
// Execute runs after it, the re-set is SETs (link.ReapplySETs): the reset then took
// effect unless the batch failed, and in the failed transaction the SETs fail too.
func (s *Session) settingsBefore(typ byte) {
	st := s.set.Load()
	if st == nil {
		return
	}
	if n := len(st.reapplyAtSync); n > 0 && st.reapplyAtSync[n-1].set != "" {
		// What runs after the reset may roll it back or end the transaction block.
		if r := &st.reapplyAtSync[n-1]; typ == 'E' && r.execs == 0 {
			r.execs++
		} else if typ != 'P' && typ != 'D' && typ != 'C' && typ != 'H' && typ != 'S' {
			s.mu.Lock()
			r.set = ""
			s.mu.Unlock()
		}
	}
	if st.req == nil {
		return
	}
	t := st.req
	st.req = nil
	s.mu.Lock()
	if ops := st.Resets(t); len(ops) > 0 {
		st.reqErr = false
		sql := st.ReapplySQL(ops)
		if typ == 'Q' {
			st.reapplyQuery = sql
		} else {
			r := reapplyAt{sel: sql}
			if typ == 'B' && s.TxStatus == 'T' && s.Pending == 0 && len(st.reapplyAtSync) == 0 && !t.Cond {
				r.set = st.ReapplySETs(ops)
			}
			st.reapplyAtSync = append(st.reapplyAtSync, r)
		}
	}
	st.Touch(t)
	s.mu.Unlock()
}

// settingsAfter follows a forwarded Query or Sync with the hidden queries its settings
// need: startup values set again after a reset (for a Query, inside whatever transaction
// it leaves open, as the reset was), and the read-back when the Query will leave the
// server outside a transaction.
func (s *Session) settingsAfter(c *pool.Conn, typ byte) error {
	st := s.set.Load()
	if st == nil || (typ != 'Q' && typ != 'S') {
		return nil
	}
	if typ == 'S' && len(st.reapplyAtSync) == 0 {
		return nil // (only the session goroutine changes it, as settingsBefore reads it)
	}
	var b []byte
	var es []expect
	s.mu.Lock()
	if typ == 'Q' && st.reapplyQuery != "" {
		b = wire.Query(b, st.reapplyQuery)
		es = append(es, expect{Kind: 'Q', Hide: true, Setting: link.SetReapply, Val: st.reapplyQuery})
		st.reapplyQuery = ""
	}
	if typ == 'S' {
		for _, r := range st.reapplyAtSync {
			sql := r.sel
			if r.set != "" {
				sql = r.set
			}
			b = wire.Query(b, sql)
			es = append(es, expect{Kind: 'Q', Hide: true, Setting: link.SetReapply, Val: sql})
		}
		st.reapplyAtSync = st.reapplyAtSync[:0]
	}
	// The read-back is pipelined only where the Query surely ends outside a transaction:
	// nothing else outstanding, and either no transaction open and none begun, or one
	// ended. Otherwise the reader sends it at ReadyForQuery 'I'.
	if typ == 'Q' && st.Touched() && s.Pending == 1 && !s.Unsynced && !st.reqBegin &&
		(s.TxStatus == 'I' || st.reqEnd) {
		b = wire.Query(b, st.ReadSQL())
		es = append(es, expect{Kind: 'Q', Hide: true, Setting: link.SetRead, Seq: st.Gen()})
	}
	for _, e := range es {
		if e.Setting == link.SetReapply {
			st.reapplying++
			st.out.Store(int32(st.reapplying))
			s.q.wakeChan()
			s.flushNow = true // the client's next message waits for its answer
		}
		s.q.push(&e)
	}
	s.mu.Unlock()
	if len(b) == 0 {
		return nil
	}
	if err := c.Wr.Write(b); err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}

// needsRead reports whether the link must read settings back before it ends. s.mu is held.
func (s *Session) needsRead() bool {
	st := s.set.Load()
	return st != nil && st.Touched()
}

// readBack sends the read-back from the server's reader, at a ReadyForQuery 'I' with
// nothing else outstanding. It takes the connection's write lock like a retry does
// (retry.go) and gives up when the session is writing: its new request keeps the link,
// and the read-back goes out at that request's end. It reports whether it sent.
func (s *Session) readBack(c *pool.Conn) (bool, error) {
	x := linkOf(c)
	if x == nil || !lockBriefly(&x.wmu) {
		return false, nil
	}
	defer x.wmu.Unlock()
	s.mu.Lock()
	if s.server != c || !s.Quiet(&s.q.ring) || !s.needsRead() {
		s.mu.Unlock()
		return false, nil
	}
	st := s.set.Load()
	s.q.push(&expect{Kind: 'Q', Hide: true, Setting: link.SetRead, Seq: st.Gen()})
	b := wire.Query(nil, st.ReadSQL())
	s.mu.Unlock()
	err := c.Wr.Write(b)
	if err == nil {
		err = c.Wr.Flush()
	}
	return err == nil, err
}

// readRow takes one row of a read-back: the setting's name and its value or NULL.
func (s *Session) readRow(rd *wire.Reader, n int) error {
	m, err := rd.Message(n)
	if err != nil {
		return err
	}
	body := wire.Body(m)
	cols, rest, err := wire.Int16(body)
	if err != nil || cols != 2 {
		return nil
	}
	var vals [2]struct {
		value string
		null  bool
	}
	for i := 0; i < 2; i++ {
		l, r, err := wire.Int32(rest)
		if err != nil {
			return nil
		}
		if l < 0 {
			vals[i].null = true
			rest = r
			continue
		}
		if int(l) > len(r) {
			return nil
		}
		vals[i].value, rest = string(r[:l]), r[l:]
	}
	s.mu.Lock()
	if st := s.set.Load(); st != nil && !vals[0].null {
		st.AddRow(vals[0].value, vals[1].value, vals[1].null)
	}
	s.mu.Unlock()
	return nil
}

// settingsRefused handles the server's error for a hidden settings query. A sync query
// that failed for any reason leaves the server's value unknown; one the server refused
// outright (a bad value, a name it does not know, a setting that cannot be changed) also
// drops the setting from the client's. s.mu is held.
func (s *Session) settingsRefused(c *pool.Conn, e expect, pe *pgerr.Error) {
	st := s.set.Load()
	switch {
	case e.Setting == link.SetRead && st != nil:
		st.ReadFailed = true
		return
	case e.Setting == link.SetReapply && st != nil:
		st.ReapplyFailed = true
		return
	}
	x := linkOf(c)
	if x == nil || (e.Setting != link.SetSync && e.Setting != link.SetSyncReset) {
		return
	}
	switch {
	case e.Setting == link.SetSyncReset && refusal(pe):
		x.set.Delete(e.Stmt) // no session value there to reset: do not try again
	case e.Setting == link.SetSync && refusal(pe):
		x.set.Set(e.Stmt, unknownValue)
		st.Refused(e.Stmt)
	default: // a cancel, a timeout: as since it was sent, the next client sets or resets it
		x.set.Set(e.Stmt, unknownValue)
	}
}

// syncAnswered records the CommandComplete of a hidden query of syncSettings: the server
// has the value it set, or its default. s.mu is held.
func syncAnswered(c *pool.Conn, e answered) {
	if x := linkOf(c); x != nil {
		x.synced(setOp{Name: e.Stmt, Reset: e.Setting == link.SetSyncReset, Value: e.Val})
	}
}

// refusal reports whether an error means the server will never take the value.
func refusal(pe *pgerr.Error) bool {
	if pe == nil {
		return false
	}
	switch pe.Code {
	case pgerr.InvalidParameterValue, pgerr.InsufficientPrivilege,
		"42704", // undefined_object: unrecognized configuration parameter
		"55P02": // cant_change_runtime_param
		return true
	}
	return strings.HasPrefix(pe.Code, "22")
}

// logRefused logs a hidden settings query that failed.
func (s *Session) logRefused(e expect, pe *pgerr.Error) {
	switch {
	case (e.Setting == link.SetSync || e.Setting == link.SetSyncReset) && refusal(pe):
		s.log().Warn("a server refused the client's setting; it is dropped", zap.String("setting", e.Stmt), zap.Error(pe))
	case e.Setting == link.SetSync || e.Setting == link.SetSyncReset:
		s.log().Info("giving a server the client's setting failed", zap.String("setting", e.Stmt), zap.Error(pe))
	case e.Setting == link.SetReapply && refusal(pe):
		// A startup value the server no longer takes (its object dropped since):
		// PostgreSQL's RESET would not check it again; here the client's transaction,
		// if one is open, is aborted without an error of its own.
		s.log().Warn("a server refused a startup value set again after the client's reset", zap.Error(pe))
	default:
		s.log().Debug("hidden settings query failed", zap.Error(pe))
	}
}

// A reset's hidden re-set of the startup values can fail (a cancel meant for another
// client's query can land on it; the pg_settings view can be closed to the client's
// role). When the reset itself committed, the server is left at its default while a
// direct session would have the client's startup value: pgmux sets it again once (the
// retry reads the settings through pg_show_all_settings(), which a role may call when
// the view is closed to it), before anything else of the client's reaches that server:
// the session goroutine waits for the outcome before it forwards the client's next
// message on the link, and sends the retry itself (awaitReapply), so that message sees
// the startup value, and the client hears of no ParameterStatus in between. A link that
// ends at the failed one's ReadyForQuery needs none: the next sets the value (resetStood
// leaves the server's value unknown).

// awaitReapply waits until the server has answered the startup values' re-set (and its
// retry) sent on the link, or the link has ended; a failed one is sent again here, before
// the client's message. Session goroutine, before it forwards a message; no lock held. It
// returns the server and the error of a failed write.
func (s *Session) awaitReapply(st *settings) (*pool.Conn, error) {
	deadline := time.Now().Add(maxClearWait)
	for st.out.Load() > 0 && time.Now().Before(deadline) {
		s.mu.Lock()
		c, retry, wake := s.server, st.retrySQL, s.q.wakeChan()
		s.mu.Unlock()
		if c == nil || s.closed.Load() {
			return nil, nil
		}
		if retry != "" {
			return c, s.retryReapply(c, st)
		}
		t := time.NewTimer(clearWait)
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
	return nil, nil
}

// retryReapply sends the failed re-set again, reading the settings through
// pg_show_all_settings(); its expect takes the failed one's place in reapplying.
func (s *Session) retryReapply(c *pool.Conn, st *settings) error {
	x := linkOf(c)
	if x == nil {
		return nil
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	s.mu.Lock()
	sql := st.retrySQL
	st.retrySQL = ""
	if s.server != c || sql == "" {
		s.mu.Unlock()
		return nil
	}
	st.ReapplyFailed = false
	s.q.push(&expect{Kind: 'Q', Hide: true, Setting: link.SetReapply})
	s.mu.Unlock()
	s.log().Debug("setting the startup values again after a reset failed: retried")
	err := c.Wr.Write(wire.Query(nil, strings.Replace(sql, "pg_catalog.pg_settings s", "pg_catalog.pg_show_all_settings() s", 1)))
	if err == nil {
		err = c.Wr.Flush()
	}
	if err != nil {
		return &wire.WriteError{Err: err}
	}
	return nil
}
