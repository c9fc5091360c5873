package link

import (
	"strings"

	"github.com/pgmux/pgmux/protocol/sqlscan"
)

// What a request's SQL text does to session state (package proxy's sticky.go and
// settings.go carry it out): the reasons a transaction-mode client keeps its server
// (Pin), whether the text may release such state, whether it begins or ends a
// transaction block, and the settings it names (SetTouch). Decided from the text alone:
// table tests (TestClassifyPins) and FuzzClassify drive it without a session.

// Pin is a set of reasons a client keeps its server.
type Pin uint16

const (
	PinAdvisory Pin = 1 << iota
	PinListen
	PinPrepare
	PinHold
	PinTemp
	PinSet
	PinRole
	PinLoad
	PinSession // asked for a real session (pgmux.pool_mode=session)
)

// PinNames names each reason, bit i for PinNames[i] (SHOW and the metrics' labels).
var PinNames = [...]string{"advisory_lock", "listen", "prepare", "with_hold_cursor",
	"temp_object", "set", "role", "load", "session"}

func (r Pin) String() string {
	if r == 0 {
		return ""
	}
	var parts []string
	for i, name := range PinNames {
		if r&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ",")
}

// Permanent reasons are never undone by the client: only a disconnect ends them.
const Permanent = PinLoad | PinSession

// Verdict is what a request's text does to session state.
type Verdict struct {
	Pin        Pin
	Release    bool      // it may release pinned state
	Begin, End bool      // it begins / ends a transaction block
	Set        *SetTouch // the settings it names; nil for none
}

// ClassifyText is what sql does to session state, for interesting =
// sqlscan.MaybeInteresting(sql): no I/O and no state, so table tests and FuzzClassify
// drive it with text alone.
func ClassifyText(sql string, interesting bool) Verdict {
	l := sqlscan.LeadOf(sql)
	l.Interesting = interesting
	return ClassifyLead(sql, l)
}

// ClassifyLead is ClassifyText for l = sqlscan.LeadOf(sql) (but for l.Interesting, as
// in ClassifyText): every statement of a multi-statement text, and the statements
// inside its DO blocks. A DO block's statements may not all run, so a block that pins
// also releases: the caller then asks the server whether the state is there.
func ClassifyLead(sql string, l sqlscan.Lead) (v Verdict) {
	if !l.Interesting {
		// DROP is no kind of its own, but dropping a temporary object may end a pin.
		if l.Keyword == sqlscan.KwDrop {
			v.Release = true
			return v
		}
		// A DROP after another statement of the text: the full scan finds it. A text whose
		// every ';' is trailing (pgbench's, most drivers') holds no other statement.
		if !l.More || !sqlscan.ContainsFold(sql, "drop") {
			return v
		}
	}
	hasDo := false
	for st := range sqlscan.All(sqlscan.Scan(sql)) {
		hasDo = hasDo || st.Do != nil
		if st.AdvisoryLock > 0 {
			v.Pin |= PinAdvisory
		}
		if st.AdvisoryUnlock > 0 || st.AdvisoryUnlockAll {
			v.Release = true
		}
		switch st.Kind {
		case sqlscan.KindListen:
			v.Pin |= PinListen
		case sqlscan.KindPrepare:
			v.Pin |= PinPrepare
		case sqlscan.KindDeclareHold:
			v.Pin |= PinHold
		case sqlscan.KindCreateTemp:
			v.Pin |= PinTemp
		case sqlscan.KindSetRole:
			v.Pin |= PinRole
		case sqlscan.KindLoad:
			v.Pin |= PinLoad
		case sqlscan.KindBegin:
			v.Begin = true
		case sqlscan.KindCommit, sqlscan.KindRollback:
			v.End, v.Release = true, true
		case sqlscan.KindReset, sqlscan.KindResetAll, sqlscan.KindDiscardAll, sqlscan.KindDiscard,
			sqlscan.KindUnlisten, sqlscan.KindUnlistenAll, sqlscan.KindDeallocate,
			sqlscan.KindDeallocateAll, sqlscan.KindClose:
			v.Release = true
		case sqlscan.KindOther:
			if sqlscan.LeadKeyword(st.Text) == sqlscan.KwDrop {
				v.Release = true
			}
		}
		var pin Pin
		v.Set, pin = SetTouchOf(v.Set, st)
		v.Pin |= pin
	}
	if hasDo && v.Pin != 0 {
		v.Release = true
	}
	return v
}

// untracked are settings that are not carried between servers: they last one
// transaction, pin the client instead (role), or cannot be set back (seed).
var untracked = map[string]bool{
	"transaction_isolation": true, "transaction_read_only": true, "transaction_deferrable": true,
	"role": true, "session_authorization": true, "seed": true,
}

// SetOp is one setting a request names.
type SetOp struct {
	Name  string // lower-case
	Reset bool   // RESET, SET ... TO DEFAULT, RESET ALL or DISCARD ALL
	// Local: a reset for the transaction alone (SET LOCAL ... TO DEFAULT), which leaves
	// the session's value as it was once the transaction ends: nothing to read back, and
	// the startup value is set again with SET LOCAL.
	Local bool
	Value string // for a hidden set_config at link time (syncSQL): the value it sets
}

// SetTouch is what a request's text does to settings.
type SetTouch struct {
	Ops []SetOp
	All bool // RESET ALL or DISCARD ALL
	// Cond: a reset may not have run, as a set_config(name, NULL, ...) in a query whose
	// rows decide: behind an extended-protocol request, the startup value is set again
	// only where it took effect (Settings.ReapplySQL), never by SETs. (In a simple Query
	// the NULL itself becomes the startup value: ResetInPlace.)
	Cond bool
}

// Add records the setting name (lower-cased; not one of those not carried between
// servers) as set, or reset; a nil t is made.
func (t *SetTouch) Add(name string, reset bool) *SetTouch { return t.add(name, reset, false) }

// AddLocalReset records the setting name as reset for the transaction alone (SET LOCAL
// name TO DEFAULT); a nil t is made.
func (t *SetTouch) AddLocalReset(name string) *SetTouch { return t.add(name, true, true) }

func (t *SetTouch) add(name string, reset, local bool) *SetTouch {
	name = strings.ToLower(name)
	if untracked[name] {
		return t
	}
	if t == nil {
		t = &SetTouch{}
	}
	t.Ops = append(t.Ops, SetOp{Name: strings.Clone(name), Reset: reset, Local: local})
	return t
}

// characteristics are the settings SET SESSION CHARACTERISTICS AS TRANSACTION sets.
var characteristics = [...]string{"default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable"}

// SetTouchOf reads what one classified statement does to settings into t. A session
// set_config whose name is not a literal pins (pgmux cannot tell what it sets), and one of
// role or session_authorization pins like SET ROLE. set_config(name, NULL, ...) resets
// the setting, as SET [LOCAL] name TO DEFAULT does.
func SetTouchOf(t *SetTouch, st *sqlscan.Statement) (*SetTouch, Pin) {
	var pin Pin
	switch st.Kind {
	case sqlscan.KindSet:
		t = t.Add(st.Name, st.Value == "DEFAULT")
	case sqlscan.KindSetLocal:
		// PostgreSQL's DEFAULT is the session's reset value, the client's startup value
		// where it gave one, which a shared server does not have (SET TRANSACTION has no
		// name).
		if st.Name != "" && st.Value == "DEFAULT" {
			t = t.AddLocalReset(st.Name)
		}
	case sqlscan.KindReset:
		t = t.Add(st.Name, true)
	case sqlscan.KindSetCharacteristics:
		// The session's transaction defaults: carried and read back like any SET of
		// them, so that they follow the client and do not stay on the server for the
		// next client (which began its transactions SERIALIZABLE or READ ONLY).
		for _, name := range characteristics {
			t = t.Add(name, false)
		}
	case sqlscan.KindResetAll, sqlscan.KindDiscardAll:
		if t == nil {
			t = &SetTouch{}
		}
		t.All = true
	}
	for _, sc := range st.SetConfigs {
		switch {
		case sc.Null != "" && sc.Name != "" && sc.Local != -1:
			if sc.Local == 1 {
				t = t.AddLocalReset(sc.Name)
			} else {
				t = t.Add(sc.Name, true)
			}
			if t != nil {
				t.Cond = true
			}
			if sc.Local == 0 && (sc.Name == "role" || sc.Name == "session_authorization") {
				pin |= PinRole
			}
		case sc.Local == 1:
		case sc.Name == "":
			pin |= PinSet
		case sc.Name == "role" || sc.Name == "session_authorization":
			pin |= PinRole
		default:
			t = t.Add(sc.Name, false)
		}
	}
	return t, pin
}
