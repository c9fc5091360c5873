package link

import (
	"math/bits"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/params"
	"github.com/pgmux/pgmux/protocol/wire"
)

// read feeds a read-back's rows and commits them at status.
func read(st *Settings, known *params.Params, status byte, rows ...readVal) {
	st.rows = append(st.rows, rows...)
	st.Commit(known, status, st.gen)
}

func val(name, value string) readVal { return readVal{name: name, value: value} }

// TestSettingsState: what a client and a server are known to have as requests touch
// settings and their values are read back.
func TestSettingsState(t *testing.T) {
	st := &Settings{}
	st.Start.Set("datestyle", "Postgres,MDY")
	known := &params.Params{}

	// Link: the startup value goes to the server; what the server has is unknown until
	// it answers.
	b, names := st.SyncSQL(nil, known, nil)
	require.Equal(t, []SetOp{{Name: "datestyle", Value: "Postgres,MDY"}}, names)
	require.Contains(t, string(b), "set_config(E'datestyle', E'Postgres,MDY', false)")
	require.Equal(t, params.Params{{Name: "datestyle", Value: UnknownValue}}, *known)
	// Unanswered (a link that ended): sent again.
	_, again := st.SyncSQL(nil, known, nil)
	require.Equal(t, names, again)
	Synced(known, names[0])
	require.Equal(t, params.Params{{Name: "datestyle", Value: "Postgres,MDY"}}, *known)
	// Nothing to send once answered.
	b, names = st.SyncSQL(nil, known, nil)
	require.Empty(t, b)
	require.Empty(t, names)

	// SET statement_timeout: touched, then read back outside a transaction.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "statement_timeout"}}})
	require.Contains(t, st.ReadSQL(), "(E'statement_timeout')")
	read(st, known, 'T', val("statement_timeout", "5s")) // inside a transaction: not final
	require.Len(t, st.touched, 1)
	_, ok := st.Own.Get("statement_timeout")
	require.False(t, ok)
	read(st, known, 'I', val("statement_timeout", "5s"))
	require.Empty(t, st.touched)
	v, _ := st.Effective("statement_timeout")
	require.Equal(t, "5s", v)
	v, _ = known.Get("statement_timeout")
	require.Equal(t, "5s", v)

	// A touch after the read-back was sent stays touched.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	sent := st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	st.rows = append(st.rows, val("work_mem", "8MB"))
	st.Commit(known, 'I', sent)
	require.Len(t, st.touched, 1)
	read(st, known, 'I', val("work_mem", "8MB"))
	require.Empty(t, st.touched)

	// RESET of a startup setting: the read-back shows the startup value set again; the
	// client's own value is gone and the server keeps the startup value.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}})
	read(st, known, 'I', val("datestyle", "ISO, MDY"))
	v, _ = st.Effective("datestyle")
	require.Equal(t, "ISO, MDY", v)
	reset := &SetTouch{Ops: []SetOp{{Name: "datestyle", Reset: true}}}
	require.Equal(t, []SetOp{{Name: "datestyle"}}, st.Resets(reset))
	require.Contains(t, st.ReapplySQL(st.Resets(reset)), "(E'datestyle', E'Postgres,MDY', false)")
	st.Touch(reset)
	read(st, known, 'I', val("datestyle", "Postgres, MDY"))
	v, _ = st.Effective("datestyle")
	require.Equal(t, "Postgres,MDY", v, "the startup value")
	_, names = st.SyncSQL(nil, known, nil)
	require.Empty(t, names, "the server has the startup value")

	// A reset that rolled back leaves the value as it was.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem", Reset: true}}})
	read(st, known, 'I', val("work_mem", "8MB"))
	v, _ = st.Effective("work_mem")
	require.Equal(t, "8MB", v)
	// One that took effect, without a startup value: back to the server's default.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem", Reset: true}}})
	read(st, known, 'I', val("work_mem", "4MB"))
	_, ok = st.Effective("work_mem")
	require.False(t, ok)
	_, ok = known.Get("work_mem")
	require.False(t, ok)

	// A name the server does not know reads back NULL: nothing recorded.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "no_such"}}})
	read(st, known, 'I', readVal{name: "no_such", null: true})
	_, ok = st.Effective("no_such")
	require.False(t, ok)

	// RESET ALL touches every setting the client has.
	st.Touch(&SetTouch{All: true})
	var touched []string
	for _, tc := range st.touched {
		require.Equal(t, st.gen, tc.resetGen)
		touched = append(touched, tc.name)
	}
	require.ElementsMatch(t, []string{"statement_timeout", "datestyle"}, touched)
	read(st, known, 'I', val("statement_timeout", "0"), val("datestyle", "Postgres,MDY"))
	_, ok = st.Effective("statement_timeout")
	require.False(t, ok)

	// Another client without settings gets this server: RESET of what it has.
	known.Set("search_path", "app")
	var none *Settings
	b, names = none.SyncSQL(nil, known, nil)
	require.Equal(t, []SetOp{{Name: "datestyle", Reset: true}, {Name: "search_path", Reset: true}}, names)
	require.Contains(t, string(b), `RESET "datestyle"`)
	require.Equal(t, params.Params{{Name: "datestyle", Value: UnknownValue}, {Name: "search_path", Value: UnknownValue}}, *known)
	for _, op := range names {
		Synced(known, op)
	}
	require.Empty(t, *known)

	// A client that left before its settings were read leaves them unknown on the server.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	st.Forget(known)
	v, _ = known.Get("work_mem")
	require.Equal(t, UnknownValue, v)
	_, names = st.SyncSQL(nil, known, nil)
	require.Contains(t, names, SetOp{Name: "work_mem", Reset: true})

	// A read-back that fails (a cancel) keeps the names touched; after a few in a row
	// the server's values are given up as unknown.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "lock_timeout"}}})
	for i := 1; i < MaxReadFails; i++ {
		st.ReadFailed = true
		read(st, known, 'I', val("lock_timeout", "1s"))
		require.Len(t, st.touched, 1)
	}
	st.ReadFailed = true
	read(st, known, 'I')
	require.Empty(t, st.touched)
	v, _ = known.Get("lock_timeout")
	require.Equal(t, UnknownValue, v)

	// A reset whose startup value could not be set again (the hidden query failed):
	// the client has its startup value, the server's is unknown.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}})
	read(st, known, 'I', val("datestyle", "ISO, MDY"))
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle", Reset: true}}})
	st.ReapplyFailed = true
	read(st, known, 'I', val("datestyle", "SQL, MDY"))
	v, _ = st.Effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = known.Get("datestyle")
	require.Equal(t, UnknownValue, v)
	require.False(t, st.ReapplyFailed)

	// The hidden query that sets the startup value again failed outside a transaction
	// block (a cancel meant for another client's query landed on it): the RESET stood,
	// though the value read back (the server's default) is the one the client had.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}})
	read(st, known, 'I', val("datestyle", "ISO, MDY"))
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle", Reset: true}}})
	st.ReapplyFailed, st.ResetStood = true, true
	read(st, known, 'I', val("datestyle", "ISO, MDY"))
	v, _ = st.Effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = known.Get("datestyle")
	require.Equal(t, UnknownValue, v, "the next link sets it again")

	// A SET whose read-back is still out, then a RESET that rolls back (BEGIN; RESET;
	// ROLLBACK): the client keeps the SET's value, and so does the server's record.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}})
	read(st, known, 'I', val("datestyle", "ISO, MDY"))
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}}) // set_config(..., 'SQL', false)
	first := st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle", Reset: true}}})
	st.rows = append(st.rows, val("datestyle", "SQL, MDY"))
	st.Commit(known, 'I', first)                       // the first read-back: before the RESET ran
	read(st, known, 'I', val("datestyle", "SQL, MDY")) // after the ROLLBACK
	v, _ = st.Effective("datestyle")
	require.Equal(t, "SQL, MDY", v)
	v, _ = known.Get("datestyle")
	require.Equal(t, "SQL, MDY", v)

	// Overlapping read-backs: SET, its read-back still out when a RESET of the same name
	// goes out. The first read-back's value (the SET's) is not the client's: the answer
	// to the second decides, and the server's default is not recorded as a value the
	// client set (which the next server would get as a session value).
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}}) // SET work_mem = '5MB'
	r1 := st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem", Reset: true}}}) // RESET work_mem
	st.rows = append(st.rows, val("work_mem", "5MB"))
	st.Commit(known, 'I', r1)
	_, ok = st.Own.Get("work_mem")
	require.False(t, ok, "an older read-back's value is not the client's")
	require.Len(t, st.touched, 1)
	read(st, known, 'I', val("work_mem", "4MB"))
	_, ok = st.Effective("work_mem")
	require.False(t, ok, "reset: the client has no value of its own")
	_, ok = known.Get("work_mem")
	require.False(t, ok, "the server is at its default")
	require.Empty(t, st.touched)
	// SET, RESET, SET again, each read-back out before the next request: the last one
	// decides, whatever the earlier ones read.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	r1 = st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem", Reset: true}}})
	r2 := st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	st.rows = append(st.rows, val("work_mem", "5MB"))
	st.Commit(known, 'I', r1)
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.Commit(known, 'I', r2)
	_, ok = st.Own.Get("work_mem")
	require.False(t, ok)
	read(st, known, 'I', val("work_mem", "6MB"))
	v, _ = st.Effective("work_mem")
	require.Equal(t, "6MB", v)
	// A startup setting: SET DateStyle, then RESET before the SET's read-back is
	// answered; the client is back at its startup value, and so is the server's record.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle"}}})
	r1 = st.gen
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "datestyle", Reset: true}}})
	st.rows = append(st.rows, val("datestyle", "ISO, MDY"))
	st.Commit(known, 'I', r1)
	v, _ = st.Effective("datestyle")
	require.Equal(t, "SQL, MDY", v, "unchanged until the RESET's read-back")
	read(st, known, 'I', val("datestyle", "Postgres, MDY"))
	v, _ = st.Effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = known.Get("datestyle")
	require.Equal(t, "Postgres,MDY", v)

	// Two read-backs out with no request between (RESET, then a query that names
	// nothing, each followed by one): the first decides; the second reads the same and
	// does not record the server's default as the client's own value.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem"}}})
	read(st, known, 'I', val("work_mem", "5MB"))
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "work_mem", Reset: true}}})
	both := st.gen
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.Commit(known, 'I', both)
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.Commit(known, 'I', both)
	_, ok = st.Own.Get("work_mem")
	require.False(t, ok, "the server's default is not the client's own value")
	_, ok = known.Get("work_mem")
	require.False(t, ok)

	// A value the server refuses is dropped from the client.
	st.Own.Set("server_version", "1")
	st.Refused("server_version")
	_, ok = st.Effective("server_version")
	require.False(t, ok)
}

// TestSettingsSQLQuoting: names and values are quoted whatever they contain.
func TestSettingsSQLQuoting(t *testing.T) {
	st := &Settings{}
	st.Start.Set("search_path", `"it's", public\x`)
	b, _ := st.SyncSQL(nil, &params.Params{}, nil)
	require.True(t, strings.Contains(string(b), `E'"it''s", public\\x'`), string(b))
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "a'b"}}})
	require.Contains(t, st.ReadSQL(), `(E'a''b')`)
}

// TestResetInPlace: a reset of a startup value with statements after it in the same
// Query gets the startup value set again right behind it, whose CommandCompletes are
// hidden, and error positions after it move back. The re-set is a SET (no snapshot) of
// the one value; outside a transaction block, after RESET ALL or for a list setting, a DO
// block; inside one, where the DO's snapshot would make PostgreSQL refuse a later SET
// TRANSACTION (25001), SETs there too, a list written item by item.
func TestResetInPlace(t *testing.T) {
	st := &Settings{}
	st.Start.Set("datestyle", "Postgres,MDY")
	st.Start.Set("timezone", "Asia/Tokyo")
	st.Start.Set("search_path", "a, b")
	set := func(name string) string {
		v, _ := st.Start.Get(name)
		return `SET "` + name + `" TO E'` + v + `'`
	}
	const setPath = `SET "search_path" TO E'a', E'b'`
	do := func(names ...string) string {
		var ops []SetOp
		for _, n := range names {
			ops = append(ops, SetOp{Name: n})
		}
		return st.ReapplyDO(ops)
	}
	setLocal := func(name string) string { return strings.Replace(set(name), "SET ", "SET LOCAL ", 1) }
	for _, c := range []struct {
		name, q, want string
		hide          uint64
		inTx          bool
		resets        int  // the re-sets added, one shift each; default: one per hidden bit
		notAll        bool // a reset is left to the hidden query after the request
	}{
		{name: "reset then show", q: "RESET DateStyle; SHOW DateStyle", want: "RESET DateStyle; " + set("datestyle") + "; SHOW DateStyle", hide: 1 << 1},
		{name: "last statement", q: "SELECT 1; RESET DateStyle", want: "SELECT 1; RESET DateStyle; " + set("datestyle"), hide: 1 << 2},
		{name: "not a startup value", q: "RESET work_mem; SHOW work_mem"},
		{name: "RESET ALL", q: "RESET ALL; SHOW TimeZone", want: "RESET ALL; " + do("datestyle", "timezone", "search_path") + "; SHOW TimeZone", hide: 1 << 1},
		{name: "RESET ALL in a transaction block", q: "BEGIN; RESET ALL; SHOW TimeZone; COMMIT",
			want: "BEGIN; RESET ALL; " + set("datestyle") + "; " + set("timezone") + "; " + setPath + "; SHOW TimeZone; COMMIT",
			hide: 1<<2 | 1<<3 | 1<<4, resets: 1},
		{name: "RESET ALL, the transaction open before", q: "RESET ALL", inTx: true,
			want: "RESET ALL; " + set("datestyle") + "; " + set("timezone") + "; " + setPath, hide: 1<<1 | 1<<2 | 1<<3, resets: 1},
		{name: "RESET ALL after the transaction's end", q: "COMMIT; RESET ALL", inTx: true,
			want: "COMMIT; RESET ALL; " + do("datestyle", "timezone", "search_path"), hide: 1 << 2},
		{name: "SET TO DEFAULT, twice", q: "SET timezone TO DEFAULT; SELECT 1; RESET datestyle; SELECT 2",
			want: "SET timezone TO DEFAULT; " + set("timezone") + "; SELECT 1; RESET datestyle; " + set("datestyle") + "; SELECT 2",
			hide: 1<<1 | 1<<4},
		{name: "a list setting", q: "RESET search_path; SELECT 1", want: "RESET search_path; " + do("search_path") + "; SELECT 1", hide: 1 << 1},
		{name: "a list setting in a transaction block", q: "BEGIN READ ONLY; RESET search_path; SET TRANSACTION READ WRITE",
			want: "BEGIN READ ONLY; RESET search_path; " + setPath + "; SET TRANSACTION READ WRITE", hide: 1 << 2},
		{name: "with EXECUTE: left to sqlmulti", q: "RESET DateStyle; EXECUTE p"},
		{name: "one statement", q: "RESET DateStyle;", want: "RESET DateStyle; " + set("datestyle") + ";", hide: 1 << 1},
		{name: "in a DO block: not seen", q: "DO $$BEGIN RESET DateStyle; END$$"},
		{name: "DISCARD ALL: left to the query after", q: "DISCARD ALL"},
		{name: "SET LOCAL TO DEFAULT in a transaction block", q: "BEGIN; SET LOCAL TimeZone TO DEFAULT; SHOW TimeZone; COMMIT",
			want: "BEGIN; SET LOCAL TimeZone TO DEFAULT; " + setLocal("timezone") + "; SHOW TimeZone; COMMIT", hide: 1 << 2},
		{name: "SET LOCAL = DEFAULT, the transaction open before", q: "SET LOCAL datestyle = default", inTx: true,
			want: "SET LOCAL datestyle = default; " + setLocal("datestyle"), hide: 1 << 1},
		{name: "SET LOCAL TIME ZONE LOCAL in an implicit block", q: "SET LOCAL TIME ZONE LOCAL; SHOW TimeZone",
			want: "SET LOCAL TIME ZONE LOCAL; " + setLocal("timezone") + "; SHOW TimeZone", hide: 1 << 1},
		{name: "SET LOCAL of a list in an implicit block", q: "SET LOCAL search_path TO DEFAULT; SHOW search_path",
			want: "SET LOCAL search_path TO DEFAULT; " + st.ReapplyDO([]SetOp{{Name: "search_path", Local: true}}) + "; SHOW search_path",
			hide: 1 << 1},
		{name: "SET LOCAL of a list in a transaction block", q: "SET LOCAL search_path TO DEFAULT", inTx: true,
			want: "SET LOCAL search_path TO DEFAULT; " + strings.Replace(setPath, "SET ", "SET LOCAL ", 1), hide: 1 << 1},
		{name: "SET LOCAL alone outside a transaction block: sets nothing", q: "SET LOCAL TimeZone TO DEFAULT"},
		{name: "SET LOCAL of a value", q: "BEGIN; SET LOCAL TimeZone TO 'UTC'; SHOW TimeZone"},
		{name: "set_config NULL: the startup value in its place", q: "RESET DateStyle; SELECT set_config('TimeZone', NULL, false)",
			want: "RESET DateStyle; " + set("datestyle") + "; SELECT set_config('TimeZone', E'Asia/Tokyo', false)",
			hide: 1 << 1, resets: 2},
		{name: "set_config NULL alone, local", q: "SELECT 1, pg_catalog.set_config('timezone', null, true)",
			want: "SELECT 1, pg_catalog.set_config('timezone', E'Asia/Tokyo', true)", resets: 1},
		{name: "set_config NULL of another setting", q: "SELECT set_config('work_mem', NULL, false)"},
		{name: "set_config NULL of an unknown scope", q: "SELECT set_config('timezone', NULL, $1)"},
		{name: "set_config NULL in a DO block", q: "RESET DateStyle; DO $$BEGIN PERFORM set_config('timezone', NULL, false); END$$",
			want: "RESET DateStyle; " + set("datestyle") + "; DO $$BEGIN PERFORM set_config('timezone', NULL, false); END$$",
			hide: 1 << 1, notAll: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, hide, shifts, all := ResetInPlace(st, c.q, c.inTx)
			if c.want == "" {
				require.Nil(t, m)
				return
			}
			require.Equal(t, string(wire.Query(nil, c.want)), string(m))
			require.Equal(t, c.hide, hide)
			require.Equal(t, !c.notAll, all, "all")
			if c.resets == 0 {
				c.resets = bits.OnesCount64(c.hide)
			}
			require.Len(t, shifts, c.resets)
			// Each shift covers one "; SET ..." or "; DO ..." block, at its place in the
			// server's text (characters; these queries are ASCII).
			sent := string(m[wire.HeaderLen : len(m)-1])
			for _, sh := range shifts {
				if lit := "E'Asia/Tokyo'"; strings.HasSuffix(sent[:sh.At], lit) && sh.Delta == len(lit)-len("NULL") {
					continue // a NULL given the startup value
				}
				added := sent[sh.At : sh.At+sh.Delta]
				do := strings.HasPrefix(added, "; DO "+InPlaceTag) && strings.HasSuffix(added, InPlaceTag)
				require.True(t, do || strings.HasPrefix(added, "; SET "), added)
			}
		})
	}
}

// TestSetStart: the SET that gives a startup value back without a snapshot reads a list
// as PostgreSQL's SplitIdentifierString does, and there is none where it might not.
func TestSetStart(t *testing.T) {
	for _, c := range []struct{ name, start, want string }{
		{"datestyle", "Postgres,MDY", `SET "datestyle" TO E'Postgres,MDY'`},
		{"search_path", "s1,public", `SET "search_path" TO E's1', E'public'`},
		{"search_path", ` "$user" ,  Public `, `SET "search_path" TO E'$user', E'public'`},
		{"search_path", `"My ""Schema"", x",b`, `SET "search_path" TO E'My "Schema", x', E'b'`},
		{"temp_tablespaces", `"", pg_default`, `SET "temp_tablespaces" TO E'', E'pg_default'`},
		{"search_path", "", `SET "search_path" TO E''`}, // an empty list: one empty name
		{"temp_tablespaces", " ", `SET "temp_tablespaces" TO E''`},
		{"search_path", "a,", ""},                    // PostgreSQL's syntax error
		{"search_path", "a b", ""},                   // likewise
		{"search_path", `"a`, ""},                    // an open quote
		{"search_path", "schéma", ""},                // folded by the server's encoding rules
		{"search_path", strings.Repeat("x", 64), ""}, // truncated by the server
		{"session_preload_libraries", "auto_explain", ""},
	} {
		got, ok := setStart(c.name, c.start, false)
		require.Equal(t, c.want != "", ok, "%s = %q", c.name, c.start)
		require.Equal(t, c.want, got, "%s = %q", c.name, c.start)
	}
}

// TestResetsAll: RESET ALL gives back every startup value but those PostgreSQL's RESET
// ALL leaves alone (the transaction's modes, the role), which a SET behind it would
// change.
func TestResetsAll(t *testing.T) {
	st := &Settings{}
	st.Start.Set("datestyle", "ISO")
	st.Start.Set("transaction_read_only", "on")
	st.Start.Set("default_transaction_read_only", "on")
	require.Equal(t, []SetOp{{Name: "datestyle"}, {Name: "default_transaction_read_only"}}, st.Resets(&SetTouch{All: true}))
	require.Equal(t, []SetOp{{Name: "transaction_read_only"}},
		st.Resets(&SetTouch{Ops: []SetOp{{Name: "transaction_read_only", Reset: true}}}))
}

// TestSyncSQLShortcut: a server that has exactly the client's startup values, for a
// client that set nothing, is sent nothing (SyncSQL's shortcut); any other difference
// still is, as the full rule decides.
func TestSyncSQLShortcut(t *testing.T) {
	start := params.Params{{Name: "application_name", Value: "pgbench"}, {Name: "datestyle", Value: "ISO, MDY"}}
	cases := []struct {
		name  string
		known params.Params
		own   params.Params
		want  []SetOp
	}{
		{"same", start.Clone(), nil, nil},
		{"same, other order", params.Params{start[1], start[0]}, nil, nil},
		{"one differs", params.Params{start[0], {Name: "datestyle", Value: "German"}}, nil,
			[]SetOp{{Name: "datestyle", Value: "ISO, MDY"}}},
		{"one unknown", params.Params{start[0], {Name: "datestyle", Value: UnknownValue}}, nil,
			[]SetOp{{Name: "datestyle", Value: "ISO, MDY"}}},
		{"one missing", params.Params{start[0]}, nil, []SetOp{{Name: "datestyle", Value: "ISO, MDY"}}},
		{"one more", append(start.Clone(), params.Param{Name: "work_mem", Value: "8MB"}), nil,
			[]SetOp{{Name: "work_mem", Reset: true}}},
		{"own value", start.Clone(), params.Params{{Name: "work_mem", Value: "8MB"}},
			[]SetOp{{Name: "work_mem", Value: "8MB"}}},
	}
	for _, c := range cases {
		st := &Settings{Start: start, Own: c.own}
		known := c.known.Clone()
		_, names := st.SyncSQL(nil, &known, nil)
		require.Equal(t, c.want, names, c.name)
	}
}

// TestListFix: after a reset of a list startup value, the read-back first gives back the
// client's text where the server has the text a SET wrote of it, unless a request set
// the list since, or its value before the reset already had that text.
func TestListFix(t *testing.T) {
	st := &Settings{}
	st.Start.Set("search_path", "s1,public")
	st.Start.Set("datestyle", "ISO")
	st.Touch(&SetTouch{All: true})
	const fix = "SELECT pg_catalog.set_config(E'search_path', E's1,public', false) WHERE " +
		"pg_catalog.current_setting(E'search_path') = pg_catalog.concat_ws(', ', " +
		"pg_catalog.quote_ident(E's1'), pg_catalog.quote_ident(E'public')) AND E's1,public' <> " +
		"pg_catalog.concat_ws(', ', pg_catalog.quote_ident(E's1'), pg_catalog.quote_ident(E'public')); SELECT v.n"
	require.Contains(t, st.ReadSQL(), fix)
	require.Equal(t, 1, strings.Count(st.ReadSQL(), "set_config"), "DateStyle is no list")
	read(st, &params.Params{}, 'I', val("search_path", "s1,public"), val("datestyle", "ISO"))

	// Set since the reset: the client's own text stands.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "search_path", Reset: true}}})
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "search_path"}}})
	require.NotContains(t, st.ReadSQL(), "set_config")
	read(st, &params.Params{}, 'I', val("search_path", "s1, public"))

	// Its value before the reset was the client's own: that one is compared.
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "search_path", Reset: true}}})
	require.Contains(t, st.ReadSQL(), "AND E's1, public' <> ")
	read(st, &params.Params{}, 'I', val("search_path", "s1,public"))

	// An empty list, which a SET writes as one empty name.
	st = &Settings{}
	st.Start.Set("search_path", "")
	st.Touch(&SetTouch{Ops: []SetOp{{Name: "search_path", Reset: true}}})
	require.Contains(t, st.ReadSQL(), "set_config(E'search_path', E'', false) WHERE "+
		"pg_catalog.current_setting(E'search_path') = pg_catalog.concat_ws(', ', pg_catalog.quote_ident(E''))")
	// A list SET does not write (not read for certain): no fix.
	st.Start.Set("search_path", "schéma")
	require.NotContains(t, st.ReadSQL(), "set_config")
}

// TestSyncEncodingFirst: the server reads the client's values in its client_encoding,
// so that one is set or reset before any other.
func TestSyncEncodingFirst(t *testing.T) {
	st := &Settings{}
	st.Start.Set("search_path", "schéma")
	known := &params.Params{{Name: "application_name", Value: "x"}, {Name: "client_encoding", Value: "LATIN1"}}
	_, names := st.SyncSQL(nil, known, nil)
	require.Equal(t, []SetOp{{Name: "client_encoding", Reset: true}, {Name: "search_path", Value: "schéma"},
		{Name: "application_name", Reset: true}}, names)

	st.Start.Set("client_encoding", "WIN1252")
	known = &params.Params{{Name: "client_encoding", Value: "LATIN1"}}
	_, names = st.SyncSQL(nil, known, nil)
	require.Equal(t, []SetOp{{Name: "client_encoding", Value: "WIN1252"}, {Name: "search_path", Value: "schéma"}}, names)
}
