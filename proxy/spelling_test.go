package proxy

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// TestSpelling: what a login knows of PostgreSQL's spelling of a startup value without a
// server, and that looking it up allocates nothing (it runs at every login).
func TestSpelling(t *testing.T) {
	e := &poolEntry{spellings: map[string]string{"TimeZone\x00utc": "UTC"}}
	cases := []struct {
		name, v, base, want string
		ok                  bool
	}{
		{"TimeZone", "Etc/UTC", "Etc/UTC", "Etc/UTC", true},
		{"TimeZone", "utc", "Etc/UTC", "UTC", true},
		{"TimeZone", "europe/paris", "Etc/UTC", "", false},
		{"DateStyle", "sql,dmy", "ISO, MDY", "SQL, DMY", true},
		{"application_name", "app", "", "app", true},
		{"application_name", "café", "", "", false},
		{"application_name", string(make([]byte, 64)), "", "", false},
		{"client_encoding", "utf8", "UTF8", "", false},
		{"search_path", "Tenant_1", "", "Tenant_1", true}, // track_extra_parameters: as written
	}
	for _, c := range cases {
		got, ok := e.spelling(c.name, c.v, c.base)
		require.Equal(t, c.ok, ok, "%s=%q", c.name, c.v)
		require.Equal(t, c.want, got, "%s=%q", c.name, c.v)
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = e.spelling("TimeZone", "utc", "Etc/UTC") })
	require.Zero(t, allocs)
	// The other startup values: asked about once (checked), except those that vary per
	// client (checkable).
	e.spellings["statement_timeout\x005s"] = "5s"
	require.True(t, e.checked("statement_timeout", "5s"))
	require.False(t, e.checked("statement_timeout", "abc"))
	require.False(t, checkable("search_path"))
	require.False(t, checkable("app.tenant"))
	require.True(t, checkable("extra_float_digits"))
	allocs = testing.AllocsPerRun(100, func() { _ = checkable("statement_timeout") && e.checked("statement_timeout", "5s") })
	require.Zero(t, allocs, "it runs at every login")
}

// TestSpellAnswer: a spelling query sends the value as hexadecimal bytes and reads the
// answer back the same way (the server's connection may have another client's encoding).
func TestSpellAnswer(t *testing.T) {
	row := func(v string) []byte {
		b, st := wire.Begin(nil, 'D')
		b = wire.AppendInt16(b, 1)
		h := hex.EncodeToString([]byte(v))
		b = wire.AppendInt32(b, int32(len(h)))
		b = append(b, h...)
		return wire.Finish(b, st)
	}
	v, ok := firstColumn(wire.Body(row("Europe/Paris")))
	require.True(t, ok)
	b, err := hex.DecodeString(v)
	require.NoError(t, err)
	require.Equal(t, "Europe/Paris", string(b))
	_, ok = firstColumn([]byte{0, 1, 0xff, 0xff, 0xff, 0xff}) // NULL
	require.False(t, ok)
	require.Contains(t, spellSQL("application_name", "café"), "decode('636166c3a9', 'hex')")
}
