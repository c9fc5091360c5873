package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScanSetConfig(t *testing.T) {
	cases := []struct {
		name, sql string
		want      []SetConfig
	}{
		{"session", "SELECT set_config('statement_timeout', '5s', false)", []SetConfig{{"statement_timeout", 0, ""}}},
		{"local", "select pg_catalog.set_config('search_path', '', true)", []SetConfig{{"search_path", 1, ""}}},
		{"string bool", "SELECT set_config('a.b', 'x', 'off')", []SetConfig{{"a.b", 0, ""}}},
		{"upper name", "SELECT SET_CONFIG('MyApp.Tenant', $1, FALSE)", []SetConfig{{"myapp.tenant", 0, ""}}},
		{"param local", "SELECT set_config('x.y', $1, $2)", []SetConfig{{"x.y", -1, ""}}},
		{"param name", "SELECT set_config($1, $2, false)", []SetConfig{{"", 0, ""}}},
		{"expression value", "SELECT set_config('x.y', (SELECT max(a)::text FROM t WHERE b IN (1, 2)), false)",
			[]SetConfig{{"x.y", 0, ""}}},
		{"expression name", "SELECT set_config('x.' || 'y', '1', false)", []SetConfig{{"", 0, ""}}},
		{"two", "SELECT set_config('a.x', '1', false), set_config('b.x', '2', true) FROM t",
			[]SetConfig{{"a.x", 0, ""}, {"b.x", 1, ""}}},
		{"nested", "SELECT set_config('a.x', set_config('b.x', '1', false), false)", []SetConfig{{"a.x", 0, ""}}},
		{"dollar name", "SELECT set_config($$work_mem$$, '8MB', false)", []SetConfig{{"work_mem", 0, ""}}},
		{"other schema", "SELECT myschema.set_config('a.x', '1', false)", nil},
		{"not a call", "SELECT set_config FROM t", nil},
		{"in a string", "SELECT 'set_config(''a'', ''b'', false)'", nil},
		{"unterminated", "SELECT set_config('a.x', '1'", nil},
		{"null value: a reset", "SELECT set_config('TimeZone', NULL, false)", []SetConfig{{"timezone", 0, "NULL"}}},
		{"null value, local", "SELECT pg_catalog.set_config('a.x', null, true)", []SetConfig{{"a.x", 1, "null"}}},
		{"null cast", "SELECT set_config('a.x', NULL::text, true)", []SetConfig{{"a.x", 1, ""}}},
		{"a string null", "SELECT set_config('a.x', 'NULL', true)", []SetConfig{{"a.x", 1, ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []SetConfig
			for _, st := range Scan(c.sql) {
				got = append(got, st.SetConfigs...)
			}
			require.Equal(t, c.want, got)
			if len(c.want) > 0 {
				require.True(t, MaybeInteresting(c.sql))
			}
		})
	}
	// Per statement, in a multi-statement string.
	sts := Scan("SELECT 1; SELECT set_config('a.x', '1', false); SET b.y = 2")
	require.Len(t, sts, 3)
	require.Empty(t, sts[0].SetConfigs)
	require.Equal(t, []SetConfig{{"a.x", 0, ""}}, sts[1].SetConfigs)
	require.Equal(t, KindSet, sts[2].Kind)
	require.False(t, MaybeInteresting("select settings from t"))
}
