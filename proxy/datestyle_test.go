package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDateStyle: a client's DateStyle is reported as PostgreSQL 15 reports it
// (check_datestyle), over the server's value.
func TestDateStyle(t *testing.T) {
	cases := []struct{ v, cur, want string }{
		{"Postgres,MDY", "ISO, MDY", "Postgres, MDY"},
		{"iso", "ISO, MDY", "ISO, MDY"},
		{"sql, dmy", "ISO, MDY", "SQL, DMY"},
		{"German", "ISO, MDY", "German, DMY"},
		{"german, ymd", "ISO, MDY", "German, YMD"},
		{"ymd, german", "ISO, MDY", "German, YMD"},
		{"postgresql,euro", "ISO, MDY", "Postgres, DMY"},
		{"European", "SQL, MDY", "SQL, DMY"},
		{" \tSQL ,noneuropean ", "ISO, DMY", "SQL, MDY"},
		{"US", "SQL, DMY", "SQL, MDY"},
		{"iso, iso", "SQL, DMY", "ISO, DMY"},
		{"DEFAULT", "Postgres, DMY", "Postgres, DMY"},
		{"sql, default", "ISO, YMD", "SQL, YMD"},
		{"German, default", "ISO, YMD", "German, YMD"}, // DEFAULT's order: German named none
		{"", "SQL, YMD", "SQL, YMD"},
		{"sql", "nonsense", "SQL, MDY"},
	}
	for _, c := range cases {
		got, ok := dateStyle(c.v, c.cur)
		require.True(t, ok, "%q over %q", c.v, c.cur)
		require.Equal(t, c.want, got, "%q over %q", c.v, c.cur)
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = dateStyle(" sql , DEFAULT", "Postgres, DMY") })
	require.Zero(t, allocs, "it runs at login")
	// PostgreSQL refuses these (or pgmux does not read them): a server is asked, which
	// refuses the login or says how it spells the value.
	for _, v := range []string{"iso, sql", "ymd, dmy", "foo", "iso,,mdy", "iso,", ",iso", "iso mdy", `"ISO"`, "\u017fql"} {
		_, ok := dateStyle(v, "ISO, MDY")
		require.False(t, ok, "%q", v)
		_, ok = (*poolEntry)(nil).spelling("DateStyle", v, "ISO, MDY")
		require.False(t, ok, "%q", v)
	}
}
