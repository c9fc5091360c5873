package proxy

import (
	"math/bits"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
)

// TestClassifySettings: which settings a request's text names, and what pins.
func TestClassifySettings(t *testing.T) {
	cases := []struct {
		sql   string
		ops   []setOp
		all   bool
		pin   pinReason
		begin bool
		end   bool
	}{
		{sql: "SELECT 1"},
		{sql: "SET client_min_messages TO 'warning'", ops: []setOp{{Name: "client_min_messages"}}},
		{sql: "set SESSION statement_timeout = '5s'", ops: []setOp{{Name: "statement_timeout"}}},
		{sql: "SET LOCAL statement_timeout = '5s'"},
		{sql: "SET TIME ZONE 'UTC'", ops: []setOp{{Name: "timezone"}}},
		{sql: "SET SESSION timezone TO 'UTC'", ops: []setOp{{Name: "timezone"}}},
		{sql: "SET intervalstyle = iso_8601", ops: []setOp{{Name: "intervalstyle"}}},
		{sql: "SET NAMES 'UTF8'", ops: []setOp{{Name: "client_encoding"}}},
		{sql: "SET search_path FROM CURRENT", ops: []setOp{{Name: "search_path"}}},
		{sql: "SET work_mem TO DEFAULT", ops: []setOp{{Name: "work_mem", Reset: true}}},
		{sql: "SET MyApp.Tenant = 'acme'", ops: []setOp{{Name: "myapp.tenant"}}},
		{sql: `SET "MyApp".tenant = 'acme'`, ops: []setOp{{Name: "myapp.tenant"}}}, // names are case-insensitive
		{sql: "RESET DateStyle", ops: []setOp{{Name: "datestyle", Reset: true}}},
		{sql: "RESET ALL", all: true},
		{sql: "DISCARD ALL", all: true},
		{sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"},
		{sql: "SET transaction_isolation = 'serializable'"},
		{sql: "SET ROLE app", pin: pinRole},
		{sql: "SET SESSION AUTHORIZATION app", pin: pinRole},
		{sql: "SELECT set_config('work_mem', '8MB', false)", ops: []setOp{{Name: "work_mem"}}},
		{sql: "SELECT set_config('work_mem', $1, $2)", ops: []setOp{{Name: "work_mem"}}},
		{sql: "SELECT set_config('work_mem', '8MB', true)"},
		{sql: "SELECT set_config($1, $2, false)", pin: pinSet},
		{sql: "SELECT set_config('role', 'app', false)", pin: pinRole},
		{sql: "BEGIN; SET work_mem = '1MB'; COMMIT", ops: []setOp{{Name: "work_mem"}}, begin: true, end: true},
		{sql: "SELECT 1; SET a.b = 1; RESET c.d", ops: []setOp{{Name: "a.b"}, {Name: "c.d", Reset: true}}},
		{sql: "DO $$BEGIN SET work_mem = '2MB'; END$$", ops: []setOp{{Name: "work_mem"}}},
	}
	s := &Session{sessionWork: newWork()}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			v := s.classify(c.sql)
			require.Equal(t, c.pin, v.Pin)
			require.Equal(t, c.begin, v.Begin)
			require.Equal(t, c.end, v.End)
			if c.ops == nil && !c.all {
				require.Nil(t, v.Set)
				return
			}
			require.NotNil(t, v.Set)
			require.Equal(t, c.ops, v.Set.Ops)
			require.Equal(t, c.all, v.Set.All)
		})
	}
}

// read feeds a read-back's rows and commits them at status.
func read(st *settings, x *serverState, status byte, rows ...readVal) {
	st.rows = append(st.rows, rows...)
	st.commit(x, status, st.gen)
}

func val(name, value string) readVal { return readVal{name: name, value: value} }

// TestSettingsState: what a client and a server are known to have as requests touch
// settings and their values are read back.
func TestSettingsState(t *testing.T) {
	st := &settings{}
	st.start.Set("datestyle", "Postgres,MDY")
	x := &serverState{}

	// Link: the startup value goes to the server; what the server has is unknown until
	// it answers.
	b, names := st.syncSQL(nil, x, nil)
	require.Equal(t, []setOp{{Name: "datestyle", Value: "Postgres,MDY"}}, names)
	require.Contains(t, string(b), "set_config(E'datestyle', E'Postgres,MDY', false)")
	require.Equal(t, pool.Params{{Name: "datestyle", Value: unknownValue}}, x.set)
	// Unanswered (a link that ended): sent again.
	_, again := st.syncSQL(nil, x, nil)
	require.Equal(t, names, again)
	x.synced(names[0])
	require.Equal(t, pool.Params{{Name: "datestyle", Value: "Postgres,MDY"}}, x.set)
	// Nothing to send once answered.
	b, names = st.syncSQL(nil, x, nil)
	require.Empty(t, b)
	require.Empty(t, names)

	// SET statement_timeout: touched, then read back outside a transaction.
	st.touch(&setTouch{Ops: []setOp{{Name: "statement_timeout"}}})
	require.Contains(t, st.readSQL(), "(E'statement_timeout')")
	read(st, x, 'T', val("statement_timeout", "5s")) // inside a transaction: not final
	require.Len(t, st.touched, 1)
	_, ok := st.own.Get("statement_timeout")
	require.False(t, ok)
	read(st, x, 'I', val("statement_timeout", "5s"))
	require.Empty(t, st.touched)
	v, _ := st.effective("statement_timeout")
	require.Equal(t, "5s", v)
	v, _ = x.set.Get("statement_timeout")
	require.Equal(t, "5s", v)

	// A touch after the read-back was sent stays touched.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	sent := st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	st.rows = append(st.rows, val("work_mem", "8MB"))
	st.commit(x, 'I', sent)
	require.Len(t, st.touched, 1)
	read(st, x, 'I', val("work_mem", "8MB"))
	require.Empty(t, st.touched)

	// RESET of a startup setting: the read-back shows the startup value set again; the
	// client's own value is gone and the server keeps the startup value.
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}})
	read(st, x, 'I', val("datestyle", "ISO, MDY"))
	v, _ = st.effective("datestyle")
	require.Equal(t, "ISO, MDY", v)
	reset := &setTouch{Ops: []setOp{{Name: "datestyle", Reset: true}}}
	require.Equal(t, []setOp{{Name: "datestyle"}}, st.resets(reset))
	require.Contains(t, st.reapplySQL(st.resets(reset)), "(E'datestyle', E'Postgres,MDY')")
	st.touch(reset)
	read(st, x, 'I', val("datestyle", "Postgres, MDY"))
	v, _ = st.effective("datestyle")
	require.Equal(t, "Postgres,MDY", v, "the startup value")
	_, names = st.syncSQL(nil, x, nil)
	require.Empty(t, names, "the server has the startup value")

	// A reset that rolled back leaves the value as it was.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem", Reset: true}}})
	read(st, x, 'I', val("work_mem", "8MB"))
	v, _ = st.effective("work_mem")
	require.Equal(t, "8MB", v)
	// One that took effect, without a startup value: back to the server's default.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem", Reset: true}}})
	read(st, x, 'I', val("work_mem", "4MB"))
	_, ok = st.effective("work_mem")
	require.False(t, ok)
	_, ok = x.set.Get("work_mem")
	require.False(t, ok)

	// A name the server does not know reads back NULL: nothing recorded.
	st.touch(&setTouch{Ops: []setOp{{Name: "no_such"}}})
	read(st, x, 'I', readVal{name: "no_such", null: true})
	_, ok = st.effective("no_such")
	require.False(t, ok)

	// RESET ALL touches every setting the client has.
	st.touch(&setTouch{All: true})
	var touched []string
	for _, tc := range st.touched {
		require.Equal(t, st.gen, tc.resetGen)
		touched = append(touched, tc.name)
	}
	require.ElementsMatch(t, []string{"statement_timeout", "datestyle"}, touched)
	read(st, x, 'I', val("statement_timeout", "0"), val("datestyle", "Postgres,MDY"))
	_, ok = st.effective("statement_timeout")
	require.False(t, ok)

	// Another client without settings gets this server: RESET of what it has.
	x.set.Set("search_path", "app")
	var none *settings
	b, names = none.syncSQL(nil, x, nil)
	require.Equal(t, []setOp{{Name: "datestyle", Reset: true}, {Name: "search_path", Reset: true}}, names)
	require.Contains(t, string(b), `RESET "datestyle"`)
	require.Equal(t, pool.Params{{Name: "datestyle", Value: unknownValue}, {Name: "search_path", Value: unknownValue}}, x.set)
	for _, op := range names {
		x.synced(op)
	}
	require.Empty(t, x.set)

	// A client that left before its settings were read leaves them unknown on the server.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	st.forget(x)
	v, _ = x.set.Get("work_mem")
	require.Equal(t, unknownValue, v)
	_, names = st.syncSQL(nil, x, nil)
	require.Contains(t, names, setOp{Name: "work_mem", Reset: true})

	// A read-back that fails (a cancel) keeps the names touched; after a few in a row
	// the server's values are given up as unknown.
	st.touch(&setTouch{Ops: []setOp{{Name: "lock_timeout"}}})
	for i := 1; i < maxReadFails; i++ {
		st.readFailed = true
		read(st, x, 'I', val("lock_timeout", "1s"))
		require.Len(t, st.touched, 1)
	}
	st.readFailed = true
	read(st, x, 'I')
	require.Empty(t, st.touched)
	v, _ = x.set.Get("lock_timeout")
	require.Equal(t, unknownValue, v)

	// A reset whose startup value could not be set again (the hidden query failed):
	// the client has its startup value, the server's is unknown.
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}})
	read(st, x, 'I', val("datestyle", "ISO, MDY"))
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle", Reset: true}}})
	st.reapplyFailed = true
	read(st, x, 'I', val("datestyle", "SQL, MDY"))
	v, _ = st.effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = x.set.Get("datestyle")
	require.Equal(t, unknownValue, v)
	require.False(t, st.reapplyFailed)

	// The hidden query that sets the startup value again failed outside a transaction
	// block (a cancel meant for another client's query landed on it): the RESET stood,
	// though the value read back (the server's default) is the one the client had.
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}})
	read(st, x, 'I', val("datestyle", "ISO, MDY"))
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle", Reset: true}}})
	st.reapplyFailed, st.resetStood = true, true
	read(st, x, 'I', val("datestyle", "ISO, MDY"))
	v, _ = st.effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = x.set.Get("datestyle")
	require.Equal(t, unknownValue, v, "the next link sets it again")

	// A SET whose read-back is still out, then a RESET that rolls back (BEGIN; RESET;
	// ROLLBACK): the client keeps the SET's value, and so does the server's record.
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}})
	read(st, x, 'I', val("datestyle", "ISO, MDY"))
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}}) // set_config(..., 'SQL', false)
	first := st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle", Reset: true}}})
	st.rows = append(st.rows, val("datestyle", "SQL, MDY"))
	st.commit(x, 'I', first)                       // the first read-back: before the RESET ran
	read(st, x, 'I', val("datestyle", "SQL, MDY")) // after the ROLLBACK
	v, _ = st.effective("datestyle")
	require.Equal(t, "SQL, MDY", v)
	v, _ = x.set.Get("datestyle")
	require.Equal(t, "SQL, MDY", v)

	// Overlapping read-backs: SET, its read-back still out when a RESET of the same name
	// goes out. The first read-back's value (the SET's) is not the client's: the answer
	// to the second decides, and the server's default is not recorded as a value the
	// client set (which the next server would get as a session value).
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}}) // SET work_mem = '5MB'
	r1 := st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem", Reset: true}}}) // RESET work_mem
	st.rows = append(st.rows, val("work_mem", "5MB"))
	st.commit(x, 'I', r1)
	_, ok = st.own.Get("work_mem")
	require.False(t, ok, "an older read-back's value is not the client's")
	require.Len(t, st.touched, 1)
	read(st, x, 'I', val("work_mem", "4MB"))
	_, ok = st.effective("work_mem")
	require.False(t, ok, "reset: the client has no value of its own")
	_, ok = x.set.Get("work_mem")
	require.False(t, ok, "the server is at its default")
	require.Empty(t, st.touched)
	// SET, RESET, SET again, each read-back out before the next request: the last one
	// decides, whatever the earlier ones read.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	r1 = st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem", Reset: true}}})
	r2 := st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	st.rows = append(st.rows, val("work_mem", "5MB"))
	st.commit(x, 'I', r1)
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.commit(x, 'I', r2)
	_, ok = st.own.Get("work_mem")
	require.False(t, ok)
	read(st, x, 'I', val("work_mem", "6MB"))
	v, _ = st.effective("work_mem")
	require.Equal(t, "6MB", v)
	// A startup setting: SET DateStyle, then RESET before the SET's read-back is
	// answered; the client is back at its startup value, and so is the server's record.
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle"}}})
	r1 = st.gen
	st.touch(&setTouch{Ops: []setOp{{Name: "datestyle", Reset: true}}})
	st.rows = append(st.rows, val("datestyle", "ISO, MDY"))
	st.commit(x, 'I', r1)
	v, _ = st.effective("datestyle")
	require.Equal(t, "SQL, MDY", v, "unchanged until the RESET's read-back")
	read(st, x, 'I', val("datestyle", "Postgres, MDY"))
	v, _ = st.effective("datestyle")
	require.Equal(t, "Postgres,MDY", v)
	v, _ = x.set.Get("datestyle")
	require.Equal(t, "Postgres,MDY", v)

	// Two read-backs out with no request between (RESET, then a query that names
	// nothing, each followed by one): the first decides; the second reads the same and
	// does not record the server's default as the client's own value.
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem"}}})
	read(st, x, 'I', val("work_mem", "5MB"))
	st.touch(&setTouch{Ops: []setOp{{Name: "work_mem", Reset: true}}})
	both := st.gen
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.commit(x, 'I', both)
	st.rows = append(st.rows, val("work_mem", "4MB"))
	st.commit(x, 'I', both)
	_, ok = st.own.Get("work_mem")
	require.False(t, ok, "the server's default is not the client's own value")
	_, ok = x.set.Get("work_mem")
	require.False(t, ok)

	// A value the server refuses is dropped from the client.
	st.own.Set("server_version", "1")
	st.refused("server_version")
	_, ok = st.effective("server_version")
	require.False(t, ok)
}

// TestSettingsNoClientCost: a client without settings on a server without any sends and
// allocates nothing at link time.
func TestSettingsNoClientCost(t *testing.T) {
	s := &Session{sessionWork: newWork()}
	x := &serverState{stmts: newStmtCache(10)}
	c := &pool.Conn{Tracker: x, Wr: wire.NewWriter(nil)}
	allocs := testing.AllocsPerRun(100, func() { s.syncSettings(c) })
	require.Zero(t, allocs)
	require.Zero(t, s.q.len())
	allocs = testing.AllocsPerRun(100, func() {
		_ = s.classify("SELECT * FROM accounts WHERE id = $1")
		s.noteRequest(nil, false, false)
		s.settingsBefore('Q')
	})
	require.Zero(t, allocs)
}

// TestSettingsSQLQuoting: names and values are quoted whatever they contain.
func TestSettingsSQLQuoting(t *testing.T) {
	st := &settings{}
	st.start.Set("search_path", `"it's", public\x`)
	b, _ := st.syncSQL(nil, &serverState{}, nil)
	require.True(t, strings.Contains(string(b), `E'"it''s", public\\x'`), string(b))
	st.touch(&setTouch{Ops: []setOp{{Name: "a'b"}}})
	require.Contains(t, st.readSQL(), `(E'a''b')`)
}

// TestStartupSettingsShared: clients of one pool that sent the same startup values share
// one read-only settings value until they send something (an idle client then holds
// none of its own); each then works on its own copy, and a value the server refuses for
// one client stays with the others.
func TestStartupSettingsShared(t *testing.T) {
	cfg := &config.Config{}
	e := &poolEntry{}
	server := pool.Params{{Name: "application_name", Value: ""}}
	start := []startup.Param{{Key: "application_name", Value: "app"}, {Key: "search_path", Value: "s1"}}
	a, b := &Session{entry: e, sessionWork: newWork()}, &Session{entry: e, sessionWork: newWork()}
	a.initParams(cfg, server, start)
	b.initParams(cfg, server, start)
	require.Same(t, a.set.Load(), b.set.Load(), "one shared value")
	require.Same(t, &a.params.own[0], &b.params.own[0], "one shared array of reported values")
	require.True(t, a.params.Set("application_name", "other"))
	v, _ := b.params.Get("application_name")
	require.Equal(t, "app", v, "a's change is a's alone")
	v, _ = a.params.Get("application_name")
	require.Equal(t, "other", v)
	require.True(t, a.set.Load().shared)
	other := &Session{entry: e, sessionWork: newWork()}
	other.initParams(cfg, server, []startup.Param{{Key: "search_path", Value: "s2"}})
	require.NotSame(t, a.set.Load(), other.set.Load())

	a.ownSettings()
	require.False(t, a.set.Load().shared)
	require.NotSame(t, a.set.Load(), b.set.Load())
	v, ok := a.set.Load().effective("search_path")
	require.True(t, ok)
	require.Equal(t, "s1", v)
	a.set.Load().refused("search_path")
	_, ok = a.set.Load().effective("search_path")
	require.False(t, ok)
	v, ok = b.set.Load().effective("search_path")
	require.True(t, ok, "the shared value is not changed by a's refusal")
	require.Equal(t, "s1", v)

	// settingsState, whatever calls it first, also gives a copy of the client's own.
	st := b.settingsState()
	require.False(t, st.shared)
	require.True(t, e.starts[packStart(b.set.Load().start)].shared)
}

// TestResetInPlace: a reset of a startup value with statements after it in the same
// Query gets the startup value set again right behind it, in a DO block whose
// CommandComplete is hidden; error positions after it move back.
func TestResetInPlace(t *testing.T) {
	st := &settings{}
	st.start.Set("datestyle", "Postgres,MDY")
	st.start.Set("timezone", "Asia/Tokyo")
	do := func(names ...string) string {
		var ops []setOp
		for _, n := range names {
			ops = append(ops, setOp{Name: n})
		}
		return st.reapplyDO(ops)
	}
	for _, c := range []struct {
		name, q, want string
		hide          uint64
	}{
		{"reset then show", "RESET DateStyle; SHOW DateStyle", "RESET DateStyle; " + do("datestyle") + "; SHOW DateStyle", 1 << 1},
		{"last statement", "SELECT 1; RESET DateStyle", "SELECT 1; RESET DateStyle; " + do("datestyle"), 1 << 2},
		{"not a startup value", "RESET work_mem; SHOW work_mem", "", 0},
		{"RESET ALL", "BEGIN; RESET ALL; SHOW TimeZone; COMMIT",
			"BEGIN; RESET ALL; " + do("datestyle", "timezone") + "; SHOW TimeZone; COMMIT", 1 << 2},
		{"SET TO DEFAULT, twice", "SET timezone TO DEFAULT; SELECT 1; RESET datestyle; SELECT 2",
			"SET timezone TO DEFAULT; " + do("timezone") + "; SELECT 1; RESET datestyle; " + do("datestyle") + "; SELECT 2",
			1<<1 | 1<<4},
		{"with EXECUTE: left to sqlmulti", "RESET DateStyle; EXECUTE p", "", 0},
		{"one statement", "RESET DateStyle;", "RESET DateStyle; " + do("datestyle") + ";", 1 << 1},
		{"in a DO block: not seen", "DO $$BEGIN RESET DateStyle; END$$", "", 0},
		{"DISCARD ALL: left to the query after", "DISCARD ALL", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, hide, fix, _ := resetInPlaceText(st, c.q)
			if c.want == "" {
				require.Nil(t, m)
				return
			}
			require.Equal(t, string(wire.Query(nil, c.want)), string(m))
			require.Equal(t, c.hide, hide)
			require.NotNil(t, fix)
			require.Len(t, fix.shifts, bits.OnesCount64(c.hide))
		})
	}
	// An error in "SELECT nosuch" after the DO is at the client's position.
	q := "RESET DateStyle; SELECT nosuch"
	m, _, fix, all := resetInPlaceText(st, q)
	require.True(t, all)
	sent, _, err := wire.CString(wire.Body(m))
	require.NoError(t, err)
	serverPos := strings.Index(string(sent), "nosuch") + 1
	e := pgerrAt(serverPos)
	got := fix.apply(e)
	require.Contains(t, string(got), "P"+strconv.Itoa(strings.Index(q, "nosuch")+1)+"\x00")
}

// pgerrAt is an ErrorResponse with position p.
func pgerrAt(p int) []byte {
	b, start := wire.Begin(nil, 'E')
	b = append(b, 'S')
	b = append(b, "ERROR\x00"...)
	b = append(b, 'P')
	b = append(b, strconv.Itoa(p)+"\x00"...)
	b = append(b, 0)
	return wire.Finish(b, start)
}

// TestServerReset: after the pool's reset query, pgmux forgets exactly what the query
// wiped on the server: statements when it drops them all, settings when it resets them
// all, and marks unknown a setting it names otherwise.
func TestServerReset(t *testing.T) {
	for _, tc := range []struct {
		query     string
		stmtsGone bool
		set       pool.Params
	}{
		{"DISCARD ALL", true, nil},
		{"DEALLOCATE ALL", true, paramsOf("search_path", "app", "statement_timeout", "7s")},
		{"deallocate prepare all;", true, paramsOf("search_path", "app", "statement_timeout", "7s")},
		{"RESET ALL", false, nil},
		{"SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *", false,
			paramsOf("search_path", "app", "statement_timeout", "7s")},
		{"RESET statement_timeout", false, paramsOf("search_path", "app", "statement_timeout", unknownValue)},
		{"RESET ALL; SET work_mem = '8MB'", false, paramsOf("work_mem", unknownValue)},
		{"DEALLOCATE ALL; SELECT set_config('search_path', 'x', false)", true,
			paramsOf("search_path", unknownValue, "statement_timeout", "7s")},
		{"SELECT 'DISCARD ALL' /* RESET ALL */", false, paramsOf("search_path", "app", "statement_timeout", "7s")},
	} {
		t.Run(tc.query, func(t *testing.T) {
			x := &serverState{stmts: newStmtCache(10), set: paramsOf("search_path", "app", "statement_timeout", "7s")}
			x.stmts.add("pgmux_1", nil)
			x.ServerReset(tc.query)
			require.Equal(t, tc.stmtsGone, x.stmts.size() == 0, "statements forgotten")
			require.Equal(t, int64(x.stmts.size()), x.stmts.Prepared.Load())
			require.Equal(t, tc.set, x.set)
		})
	}
}

// paramsOf makes Params from name, value pairs.
func paramsOf(kv ...string) pool.Params {
	var ps pool.Params
	for i := 0; i+1 < len(kv); i += 2 {
		ps.Set(kv[i], kv[i+1])
	}
	return ps
}
