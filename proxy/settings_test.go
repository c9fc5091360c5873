package proxy

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
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
	require.Same(t, a.params, b.params, "one shared value of reported parameters")
	require.True(t, a.setParam("application_name", "other"))
	require.NotSame(t, a.params, b.params, "a's own, once changed")
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
	v, ok := a.set.Load().Effective("search_path")
	require.True(t, ok)
	require.Equal(t, "s1", v)
	a.set.Load().Refused("search_path")
	_, ok = a.set.Load().Effective("search_path")
	require.False(t, ok)
	v, ok = b.set.Load().Effective("search_path")
	require.True(t, ok, "the shared value is not changed by a's refusal")
	require.Equal(t, "s1", v)

	// settingsState, whatever calls it first, also gives a copy of the client's own.
	st := b.settingsState()
	require.False(t, st.shared)
	require.True(t, e.starts[string(packStart(nil, b.set.Load().Start))].shared)

	// A client that sent values another client of the pool sent allocates nothing for
	// them at login: its values and their key are built on the stack.
	c := &Session{entry: e, sessionWork: newWork()}
	allocs := testing.AllocsPerRun(100, func() { c.initParams(cfg, server, start) })
	require.Zero(t, allocs)
	require.Same(t, &b.params.own[0], &c.params.own[0], "the shared array, not the stack's")
}

// TestResetInPlacePosition: an error in a statement after the DO block that link.ResetInPlace
// put in the Query is reported at the client's position (errFix with its shifts).
func TestResetInPlacePosition(t *testing.T) {
	st := &settings{}
	st.Start.Set("datestyle", "Postgres,MDY")
	q := "RESET DateStyle; SELECT nosuch"
	m, _, shifts, all := link.ResetInPlace(&st.Settings, q, false)
	require.True(t, all)
	sent, _, err := wire.CString(wire.Body(m))
	require.NoError(t, err)
	serverPos := strings.Index(string(sent), "nosuch") + 1
	fix := &errFix{shifts: shifts}
	got := fix.apply(pgerrAt(serverPos))
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
			x.stmts.prepare("pgmux_1", false, 0, nil, nil)
			x.ServerReset(tc.query)
			require.Equal(t, tc.stmtsGone, x.stmts.Len() == 0, "statements forgotten")
			require.Equal(t, int64(x.stmts.Len()), x.stmts.Prepared.Load())
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
