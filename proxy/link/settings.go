package link

import (
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/pgmux/pgmux/protocol/params"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// A client's session settings and their replay on whichever server it gets (package
// proxy's settings.go tells the whole scheme, and carries out the I/O: the hidden queries
// it writes, the rows it reads back, the lock it holds these values under).
//
// Settings is the client's side: its startup values (Start), the values it set since
// (Own), the names a request may have changed (touched, read back once the server is
// outside a transaction), and the rows of a read-back being received. What a server is
// known to have beyond its defaults is a params.Params of the caller's (one per server
// connection, kept between leases): SyncSQL gives the server the client's values,
// Synced records the server's answer, Commit applies a read-back to both, Forget marks a
// client's touched names unknown on the server when they cannot be read. The SQL texts
// are built here too (SyncSQL, ReadSQL, ReapplySQL, ReapplyDO, ResetInPlace), so table
// tests drive every step with values alone.

// UnknownValue marks a setting whose value on a server is not known (a hidden query
// failed, or the client left before its changes were read): it matches no client value,
// so the next client sets or resets it.
const UnknownValue = "\x00"

// MaxReadFails is how many read-backs in a row may fail before the touched settings are
// given up: the server's values become unknown (the next client of it sets or resets
// them) and the client keeps the values it had.
const MaxReadFails = 3

// InPlaceTag is the dollar-quote tag of the DO blocks ResetInPlace puts in a Query.
const InPlaceTag = "$pgmux_reset$"

// Settings is a client's session settings. It holds no lock: its owner serialises use.
type Settings struct {
	// Start are the startup values, lower-case names, as the client sent them. The array
	// may be shared with other clients: never changed in place.
	Start params.Params
	Own   params.Params // values set since, as the server reports them

	touched []touched
	gen     uint32
	rows    []readVal // the read-back being received

	// ReapplyFailed: a hidden re-set of startup values failed since the last read-back:
	// the server's values are not known.
	ReapplyFailed bool
	// ResetStood: a re-set failed outside a transaction block (a cancel meant for another
	// client's query can land on it), so the reset before it stands and the value read
	// back is the server's default, whatever the client had before.
	ResetStood bool
	ReadFailed bool // the read-back being received failed (a cancel, a timeout)
	readFails  int  // read-backs failed in a row
}

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
	gen  uint32 // Settings.gen when last named
	// setGen and resetGen: Settings.gen when a request last set it, or reset it (RESET,
	// RESET ALL, DISCARD ALL, SET ... TO DEFAULT); 0 when none did.
	setGen, resetGen uint32
	// readGen: the gen of the newest read-back answered for it whose value was not final
	// (readVal, readNull); 0 when none was.
	readGen  uint32
	readVal  string
	readNull bool
}

// readVal is one row of a read-back.
type readVal struct {
	name, value string
	null        bool
}

// Gen counts the requests that named settings: a read-back sent now carries it, and
// Commit is given it back.
func (st *Settings) Gen() uint32 { return st.gen }

// Touched reports whether a request named settings whose values are not read back yet.
func (st *Settings) Touched() bool { return len(st.touched) > 0 }

// TouchedNames calls f with each touched name.
func (st *Settings) TouchedNames(f func(name string)) {
	for i := range st.touched {
		f(st.touched[i].name)
	}
}

// AddRow records one row of the read-back being received: a setting's name and value,
// null when the server has no such setting.
func (st *Settings) AddRow(name, value string, null bool) {
	st.rows = append(st.rows, readVal{name: name, value: value, null: null})
}

// DropRead forgets the read-back being received (its link broke).
func (st *Settings) DropRead() { st.rows = nil }

// Effective returns the client's value of name: set since startup, else from startup.
func (st *Settings) Effective(name string) (string, bool) {
	if v, ok := st.Own.Get(name); ok {
		return v, true
	}
	return st.Start.Get(name)
}

// sinceRead reports whether requests since the newest value known for t set it and
// whether they reset it, and that value: the one read, or else the client's.
func (st *Settings) sinceRead(t *touched, name string) (set, reset bool, prev string, hasPrev bool) {
	if t.readGen > 0 {
		prev, hasPrev = t.readVal, !t.readNull
	} else {
		prev, hasPrev = st.Effective(name)
	}
	return t.setGen > t.readGen, t.resetGen > t.readGen, prev, hasPrev
}

// Touch marks the settings a request names, resolving RESET ALL to every setting the
// client has. A reset for the transaction alone (SetOp.Local) leaves the session's value:
// nothing to read back.
func (st *Settings) Touch(t *SetTouch) {
	st.gen++
	if t.All {
		for _, p := range st.Own {
			st.mark(p.Name, true)
		}
		for _, p := range st.Start {
			st.mark(p.Name, true)
		}
		for i := range st.touched {
			st.touched[i].resetGen, st.touched[i].gen = st.gen, st.gen
		}
	}
	for _, op := range t.Ops {
		if !op.Local {
			st.mark(op.Name, op.Reset)
		}
	}
}

func (st *Settings) mark(name string, reset bool) {
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
func (st *Settings) find(name string) int {
	for i := range st.touched {
		if st.touched[i].name == name {
			return i
		}
	}
	return -1
}

// MarkReported marks a reported parameter the server changed while answering the client
// (by a function, say), unless the request already named it.
func (st *Settings) MarkReported(name string) {
	lower := strings.ToLower(name)
	if st.find(lower) >= 0 {
		return
	}
	st.gen++
	st.touched = append(st.touched, touched{name: strings.Clone(lower), gen: st.gen, setGen: st.gen})
}

// Resets lists the startup settings a request resets, for the hidden query that sets
// the startup value again: for the transaction alone (Local) where every reset of it in
// the request is a SET LOCAL ... TO DEFAULT.
func (st *Settings) Resets(t *SetTouch) []SetOp {
	var out []SetOp
	for _, p := range st.Start {
		if t.All {
			if !noResetAll[p.Name] {
				out = append(out, SetOp{Name: p.Name})
			}
			continue
		}
		reset, local := false, true
		for _, op := range t.Ops {
			if op.Reset && op.Name == p.Name {
				reset, local = true, local && op.Local
			}
		}
		if reset {
			out = append(out, SetOp{Name: p.Name, Local: local})
		}
	}
	return out
}

// noResetAll are the settings RESET ALL leaves as they are (GUC_NO_RESET_ALL): the
// current transaction's modes and the role. A SET of a startup value of one after RESET
// ALL would change what PostgreSQL's RESET ALL keeps.
var noResetAll = map[string]bool{"transaction_isolation": true, "transaction_read_only": true,
	"transaction_deferrable": true, "role": true, "session_authorization": true}

// SetConfigSQL is the query that sets name to value for the session.
func SetConfigSQL(name, value string) string { return setConfigSQL(name, value, false) }

// setConfigSQL is the query that sets name to value for the session, or for the
// transaction alone (local).
func setConfigSQL(name, value string, local bool) string {
	l := ", false)"
	if local {
		l = ", true)"
	}
	return "SELECT pg_catalog.set_config(" + sqlscan.QuoteLiteral(name) + ", " + sqlscan.QuoteLiteral(value) + l
}

// ReapplySETs sets the startup values of ops again by SETs, which take no snapshot, for
// a reset that surely took effect in a transaction block (a value no SET writes gets the
// DO block: ReapplyDO).
func (st *Settings) ReapplySETs(ops []SetOp) string {
	return strings.Join(st.reapplyIn(ops, true, true), "; ")
}

// ReapplySQL sets startup values again where the reset took effect: where the value is no
// longer one set in the session (when the reset rolled back, it still is). It reads
// pg_settings, which costs about a millisecond of server time, only after a reset of a
// startup value. Custom settings are not in pg_settings: they are set again always. A
// reset for the transaction alone (SetOp.Local) gets the value for the transaction
// alone: where that has ended, the set lasts no longer than the query's own.
func (st *Settings) ReapplySQL(ops []SetOp) string {
	var b strings.Builder
	b.WriteString("SELECT pg_catalog.set_config(v.n, v.b, v.l) FROM (VALUES ")
	for i, op := range ops {
		if i > 0 {
			b.WriteString(", ")
		}
		start, _ := st.Start.Get(op.Name)
		l := ", false)"
		if op.Local {
			l = ", true)"
		}
		b.WriteString("(" + sqlscan.QuoteLiteral(op.Name) + ", " + sqlscan.QuoteLiteral(start) + l)
	}
	b.WriteString(") v(n, b, l) WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_settings s" +
		" WHERE pg_catalog.lower(s.name) = v.n AND s.source = 'session')")
	return b.String()
}

// ReadSQL reads the touched settings back, after giving back the client's text of the
// list settings a SET wrote anew (listFix).
func (st *Settings) ReadSQL() string {
	var b strings.Builder
	for i := range st.touched {
		if fix := st.listFix(&st.touched[i]); fix != "" {
			b.WriteString(fix + "; ")
		}
	}
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

// Commit applies the read-back received (AddRow), which ended with transaction status
// status, to the client's settings and to what the server is known to have (known); gen
// is Gen() when it was sent. Inside a transaction the values are not final and the names
// stay touched; so does a name that a request named after the read-back went out (its
// value here is kept for the next one). A failed read-back (ReadFailed) changes nothing,
// unless it is the MaxReadFails-th in a row: the touched names are then forgotten.
func (st *Settings) Commit(known *params.Params, status byte, gen uint32) {
	rows := st.rows
	st.rows = nil
	if st.ReadFailed {
		st.ReadFailed = false
		if st.readFails++; st.readFails >= MaxReadFails {
			st.readFails = 0
			st.Forget(known)
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
		start, hasStart := st.Start.Get(r.name)
		switch {
		case r.null: // no such setting
			st.Own.Delete(r.name)
			known.Delete(r.name)
		case reset && !set && !(hasPrev && prev == r.value && !st.ResetStood):
			// Reset, and not rolled back (nor reset to the value it had).
			st.Own.Delete(r.name)
			switch {
			case hasStart && (st.ReapplyFailed || listQuoted[r.name] && r.value != start):
				// The startup value may not be back, or is back as a SET wrote the list
				// (setStart) and listFix did not act: the next link sets it as the client
				// wrote it.
				known.Set(r.name, UnknownValue)
			case hasStart:
				known.Set(r.name, start) // as set again after the reset
			default:
				known.Delete(r.name) // back at the server's default
			}
		default:
			// Set (or set and reset: the value read is taken as it is), or a reset that
			// rolled back.
			if hasStart && start == r.value {
				st.Own.Delete(r.name)
			} else {
				st.Own.Set(r.name, r.value)
			}
			known.Set(r.name, r.value)
		}
	}
	st.ReapplyFailed, st.ResetStood = false, false
	kept := st.touched[:0]
	for _, t := range st.touched {
		if t.gen > gen {
			kept = append(kept, t)
		}
	}
	st.touched = kept
}

// Pristine reports whether st holds its startup values alone: none set since, none
// touched awaiting a read-back, no failure of a re-set or a read-back remembered.
func (st *Settings) Pristine() bool {
	return len(st.Own) == 0 && len(st.touched) == 0 && len(st.rows) == 0 && !st.ReapplyFailed &&
		!st.ResetStood && !st.ReadFailed && st.readFails == 0
}

// Forget marks the touched settings unknown on the server (known), when the client
// leaves before they were read: the next client of that server sets or resets them.
func (st *Settings) Forget(known *params.Params) {
	for _, t := range st.touched {
		known.Set(t.name, UnknownValue)
	}
	st.touched = st.touched[:0]
	st.rows = nil
}

// SyncSQL appends to b the hidden queries that give a server whose settings are known
// the client's settings (st may be nil: a client without any, whose server is reset to
// its defaults). Each is one Query, so one refused value does not undo the others; names
// lists each query's setting, in order. What the server has for those names is unknown
// until it answers (Synced): a link that ends before leaves them unknown, and the next
// client of that server sets or resets them. client_encoding goes first: the server
// reads the text of the others in it, and the client wrote them in its own.
func (st *Settings) SyncSQL(b []byte, known *params.Params, names []SetOp) ([]byte, []SetOp) {
	if st != nil && len(st.Own) == 0 && slices.Equal(st.Start, *known) {
		// The usual link: the server has the client's startup values, as the last client
		// it served had the same, and the client set nothing of its own.
		return b, names
	}
	for _, enc := range [2]bool{true, false} {
		b, names = st.syncSQL(b, known, names, enc)
	}
	return b, names
}

// syncSQL is SyncSQL for client_encoding alone (enc) or for the other settings.
func (st *Settings) syncSQL(b []byte, known *params.Params, names []SetOp, enc bool) ([]byte, []SetOp) {
	want := func(p params.Param) {
		if have, ok := known.Get(p.Name); ok && have == p.Value || (p.Name == encodingName) != enc {
			return
		}
		b = wire.Query(b, SetConfigSQL(p.Name, p.Value))
		names = append(names, SetOp{Name: p.Name, Value: p.Value})
		known.Set(p.Name, UnknownValue)
	}
	if st != nil {
		for _, p := range st.Own {
			want(p)
		}
		for _, p := range st.Start {
			if _, ok := st.Own.Get(p.Name); !ok {
				want(p)
			}
		}
	}
	for i := range *known {
		name := (*known)[i].Name
		if (name == encodingName) != enc {
			continue
		}
		if st != nil {
			if _, ok := st.Effective(name); ok {
				continue
			}
		}
		b = wire.Query(b, "RESET "+sqlscan.QuoteIdent(name))
		names = append(names, SetOp{Name: name, Reset: true})
		(*known)[i].Value = UnknownValue
	}
	return b, names
}

// encodingName is client_encoding as settings name it (lower case).
const encodingName = "client_encoding"

// Synced records the server's answer to a hidden query of SyncSQL: the server now has
// op's value, or its default after a RESET.
func Synced(known *params.Params, op SetOp) {
	if op.Reset {
		known.Delete(op.Name)
		return
	}
	known.Set(op.Name, op.Value)
}

// Refused drops a value the server will not take from the client's settings: on a
// direct connection its SET would have failed, or its login.
func (st *Settings) Refused(name string) {
	if st != nil {
		st.Own.Delete(name)
		if _, ok := st.Start.Get(name); ok {
			st.Start = st.Start.Clone() // the array may be shared
			st.Start.Delete(name)
		}
	}
}

// PosShift is text added to a Query (ResetInPlace): positions beyond At, in the server's
// text, move back by Delta.
type PosShift struct{ At, Delta int }

// ResetInPlace returns the Query q with the startup values set again right behind every
// statement that resets them (RESET, RESET ALL, SET [LOCAL] ... TO DEFAULT), and given
// to set_config(name, NULL, ...) in place of its NULL (nullStart), as a whole Query
// message; the CommandCompletes to hide (bit i: the Query's i-th, counted with the added
// re-sets); the shifts of error positions; and whether no reset can hide in a DO block of
// the client's (all: nothing is left for a hidden query after the request). m is nil
// when there is no such statement, or the Query is one not rewritten (more than 32
// statements, PREPARE, EXECUTE, DEALLOCATE, DISCARD ALL: left to the hidden query).
// inTx: the Query starts inside a transaction block (reapplyIn).
func ResetInPlace(st *Settings, q string, inTx bool) (m []byte, hide uint64, shifts []PosShift, all bool) {
	sts := sqlscan.Scan(q)
	if len(sts) == 0 || len(sts) > 32 {
		return nil, 0, nil, false
	}
	all = true
	for _, stmt := range sts {
		switch stmt.Kind {
		case sqlscan.KindPrepare, sqlscan.KindExecute, sqlscan.KindDeallocate, sqlscan.KindDeallocateAll,
			sqlscan.KindDiscardAll:
			return nil, 0, nil, false
		}
		all = all && stmt.Do == nil
	}
	var b strings.Builder
	last, added, shifted := 0, 0, 0 // bytes of q copied, re-sets added, runes added
	edits := 0                      // set_config NULLs given the startup value
	block := inTx
	for i, stmt := range sts {
		for _, sc := range stmt.SetConfigs {
			lit, ok := st.nullStart(sc, stmt.Do != nil)
			if !ok {
				continue
			}
			off := offsetIn(q, sc.Null)
			if off < last || off+len(sc.Null) > len(q) {
				return nil, 0, nil, false
			}
			b.WriteString(q[last:off])
			b.WriteString(lit)
			last = off + len(sc.Null)
			// Positions past the literal move back by what it has more than NULL.
			n := utf8.RuneCountInString(lit)
			shifted += n - len(sc.Null)
			shifts = append(shifts, PosShift{At: utf8.RuneCountInString(q[:last]) + shifted, Delta: n - len(sc.Null)})
			edits++
		}
		var t SetTouch
		switch {
		case stmt.Kind == sqlscan.KindBegin:
			block = true
			continue
		case stmt.Kind == sqlscan.KindCommit || stmt.Kind == sqlscan.KindRollback:
			block = false
			continue
		case stmt.Kind == sqlscan.KindReset:
			t.Ops = []SetOp{{Name: strings.ToLower(stmt.Name), Reset: true}}
		case stmt.Kind == sqlscan.KindResetAll:
			t.All = true
		case stmt.Kind == sqlscan.KindSet && stmt.Value == "DEFAULT":
			t.Ops = []SetOp{{Name: strings.ToLower(stmt.Name), Reset: true}}
		case stmt.Kind == sqlscan.KindSetLocal && stmt.Name != "" && stmt.Value == "DEFAULT":
			if !block && len(sts) == 1 {
				// Outside a transaction block, explicit or implicit (a Query of several
				// statements), PostgreSQL warns and sets nothing: so would a re-set.
				continue
			}
			t.Ops = []SetOp{{Name: strings.ToLower(stmt.Name), Reset: true, Local: true}}
		default:
			continue
		}
		ops := st.Resets(&t)
		if len(ops) == 0 {
			continue
		}
		off := offsetIn(q, stmt.Text)
		end := off + len(stmt.Text)
		if off < 0 || end > len(q) || end < last {
			return nil, 0, nil, false
		}
		b.WriteString(q[last:end])
		sqls := st.reapplyIn(ops, t.All, block)
		if i+added+len(sqls) >= 64 {
			sqls = []string{st.ReapplyDO(ops)} // one CommandComplete: hide has 64 bits
		}
		ins := "; " + strings.Join(sqls, "; ")
		b.WriteString(ins)
		last = end
		// Positions past the re-set, counted in the server's text, move back by its length.
		at := utf8.RuneCountInString(q[:end]) + shifted
		n := utf8.RuneCountInString(ins)
		shifts = append(shifts, PosShift{At: at, Delta: n})
		shifted += n
		for range sqls {
			hide |= 1 << (i + added + 1) // each one's CommandComplete follows the statement's
			added++
		}
	}
	if added == 0 && edits == 0 {
		return nil, 0, nil, false
	}
	b.WriteString(q[last:])
	return wire.Query(nil, b.String()), hide, shifts, all
}

// offsetIn is the byte offset in q of part, a slice of q.
func offsetIn(q, part string) int {
	return int(uintptr(unsafe.Pointer(unsafe.StringData(part))) - uintptr(unsafe.Pointer(unsafe.StringData(q))))
}

// nullStart is the literal that gives a set_config(name, NULL, ...) of a startup value
// what PostgreSQL's gives, the reset value, which is the startup value: as SET TO DEFAULT
// does, it resets for the session or for the transaction alone, and then returns the
// value. ok is false for a call ResetInPlace leaves as it is: not of a startup value, a
// name or scope not known before it runs, a setting not carried, or a call in a DO
// block's body (inDo).
func (st *Settings) nullStart(sc sqlscan.SetConfig, inDo bool) (lit string, ok bool) {
	if sc.Null == "" || sc.Name == "" || sc.Local == -1 || inDo || untracked[sc.Name] {
		return "", false
	}
	start, ok := st.Start.Get(sc.Name)
	if !ok {
		return "", false
	}
	return sqlscan.QuoteLiteral(start), true
}

// reapplyIn sets the startup values of ops again after a reset, one statement each
// (ResetInPlace puts them behind it; ReapplySETs behind a Sync). Inside a transaction
// block (block) it takes no snapshot, as the client's RESET takes none:
// PostgreSQL still allows SET TRANSACTION READ WRITE or ISOLATION LEVEL after both, and a
// read-only transaction on a standby may still move to the primary (proxy's
// replica_move.go). So there it is a SET of each startup value (setStart), after RESET
// ALL too. Outside one, a snapshot is harmless, and after RESET ALL or of a list setting
// it is a DO block (ReapplyDO): there a value the server will not set again (a parameter
// that can only be set at connection start) must not fail the client's Query, and
// set_config keeps a list's text as the client wrote it, where SET writes it anew (the
// read-back after the block puts the client's text back: listFix). A list SET cannot
// read for certain gets the DO wherever it is.
func (st *Settings) reapplyIn(ops []SetOp, all, block bool) []string {
	if !block && (all || len(ops) != 1 || listQuoted[ops[0].Name]) {
		return []string{st.ReapplyDO(ops)}
	}
	out := make([]string, 0, len(ops))
	for _, op := range ops {
		start, _ := st.Start.Get(op.Name)
		sql, ok := setStart(op.Name, start, op.Local)
		if !ok {
			return []string{st.ReapplyDO(ops)}
		}
		out = append(out, sql)
	}
	return out
}

// setStart is the SET (SET LOCAL: local) that gives name the startup value start, and
// whether there is one. SET quotes each string of a list setting (GUC_LIST_QUOTE) as one item, where
// set_config and the startup packet split the text: "SET search_path TO 'a, b'" is one
// schema. So a list is written item by item, as PostgreSQL reads it (splitList). An
// empty list is written as one empty name, '""', which names no schema and no
// tablespace: the same list to PostgreSQL (a search path of none, the database's
// default tablespace), in other text.
func setStart(name, start string, local bool) (string, bool) {
	set := "SET "
	if local {
		set = "SET LOCAL "
	}
	if !listQuoted[name] {
		return set + sqlscan.QuoteIdent(name) + " TO " + sqlscan.QuoteLiteral(start), true
	}
	items, ok := setItems(name, start)
	if !ok {
		return "", false
	}
	if len(items) == 0 {
		items = []string{""}
	}
	for i, it := range items {
		items[i] = sqlscan.QuoteLiteral(it)
	}
	return set + sqlscan.QuoteIdent(name) + " TO " + strings.Join(items, ", "), true
}

// setItems are the items setStart writes a list setting's startup value as, and whether
// it writes one.
func setItems(name, start string) ([]string, bool) {
	if name != "search_path" && name != "temp_tablespaces" {
		return nil, false
	}
	return splitList(start)
}

// listFix is the statement that gives back, after a transaction block, the text the
// client wrote of a list setting's startup value that a reset inside the block had set
// again by a SET (reapplyIn), which writes the list anew ("s1,public" as "s1, public",
// an empty list as '""'): the same list, but not the text SHOW and current_setting give
// on a direct connection. It is sent with the read-back (ReadSQL), outside the block,
// where a snapshot is harmless, for a setting a request reset and none set since the
// last read. It acts only where the server has the text that SET wrote (quote_ident is
// the quoting SET uses), which the value before the reset did not have: elsewhere the
// reset rolled back, failed, or was set again by set_config. (A client that had set
// the list in SET's own text before the reset keeps that text: whether the reset rolled
// back does not show then.) "" when there is nothing to give back.
func (st *Settings) listFix(t *touched) string {
	if !listQuoted[t.name] {
		return ""
	}
	start, ok := st.Start.Get(t.name)
	if !ok {
		return ""
	}
	set, reset, prev, hasPrev := st.sinceRead(t, t.name)
	items, ok := setItems(t.name, start)
	if !ok || !reset || set {
		return ""
	}
	if len(items) == 0 {
		items = []string{""}
	}
	for i, it := range items {
		items[i] = "pg_catalog.quote_ident(" + sqlscan.QuoteLiteral(it) + ")"
	}
	setText := "pg_catalog.concat_ws(', ', " + strings.Join(items, ", ") + ")"
	name := sqlscan.QuoteLiteral(t.name)
	cond := "pg_catalog.current_setting(" + name + ") = " + setText
	if hasPrev {
		cond += " AND " + sqlscan.QuoteLiteral(prev) + " <> " + setText
	}
	return "SELECT pg_catalog.set_config(" + name + ", " + sqlscan.QuoteLiteral(start) + ", false) WHERE " + cond
}

// listQuoted are PostgreSQL's settings whose SET quotes a string value as one list item
// (GUC_LIST_QUOTE), where set_config splits it: "SET search_path TO 'a, b'" is one schema.
// setStart writes the first two item by item; the preload libraries' items are file
// names, read by other rules, and get the DO.
var listQuoted = map[string]bool{"search_path": true, "temp_tablespaces": true,
	"session_preload_libraries": true, "local_preload_libraries": true, "shared_preload_libraries": true}

// splitList splits a list of identifiers as PostgreSQL's SplitIdentifierString does: items
// separated by commas, blanks around them skipped, an unquoted one lower-cased, "" in a
// quoted one a quote. ok is false for text it does not read the same way for certain (bad
// syntax; non-ASCII or over-long names, which the server folds or truncates by its own
// rules).
func splitList(s string) (items []string, ok bool) {
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
	i := 0
	for i < len(s) && space(s[i]) {
		i++
	}
	if i == len(s) {
		return nil, true
	}
	for {
		var item strings.Builder
		if s[i] == '"' {
			for i++; ; i++ {
				if i == len(s) {
					return nil, false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						item.WriteByte('"')
						i++
						continue
					}
					i++
					break
				}
				item.WriteByte(s[i])
			}
		} else {
			from := i
			for i < len(s) && s[i] != ',' && !space(s[i]) {
				i++
			}
			if i == from {
				return nil, false
			}
			item.WriteString(strings.ToLower(s[from:i]))
		}
		it := item.String()
		if len(it) > 63 || strings.IndexFunc(it, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
			return nil, false
		}
		items = append(items, it)
		for i < len(s) && space(s[i]) {
			i++
		}
		if i == len(s) {
			return items, true
		}
		if s[i] != ',' {
			return nil, false
		}
		for i++; i < len(s) && space(s[i]); i++ {
		}
		if i == len(s) {
			return nil, false // PostgreSQL wants another name after a comma
		}
	}
}

// ReapplyDO is a DO block that sets the startup values of ops again, each on its own (for
// the transaction alone where the reset was: SetOp.Local): one the server will not set
// leaves the others.
func (st *Settings) ReapplyDO(ops []SetOp) string {
	var b strings.Builder
	b.WriteString("DO " + InPlaceTag + "BEGIN")
	for _, op := range ops {
		start, _ := st.Start.Get(op.Name)
		b.WriteString(" BEGIN PERFORM " + setConfigSQL(op.Name, start, op.Local)[len("SELECT "):] +
			"; EXCEPTION WHEN OTHERS THEN NULL; END;")
	}
	b.WriteString(" END" + InPlaceTag)
	return b.String()
}
