package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
)

// TestStartAsk: how a login reads a boolean and an isolation level as PostgreSQL does,
// and the refusal for each mark a login-only or transaction value's query answers.
func TestStartAsk(t *testing.T) {
	for v, want := range map[string]bool{"on": true, "ON": true, "t": true, "TrU": true, "y": true, "1": true,
		"of": false, "OFF": false, "f": false, "n": false, "no": false, "0": false} {
		on, ok := pgBool(v)
		require.True(t, ok, v)
		require.Equal(t, want, on, v)
	}
	for _, v := range []string{"", "o", "offf", "truee", "2", "01", " on", "yeſ"} {
		_, ok := pgBool(v)
		require.False(t, ok, v)
	}
	require.True(t, isoLevel("Repeatable READ"))
	require.False(t, isoLevel("repeatable  read"))
	a := spellAsk{key: "Log_Connections", value: "maybe"}
	require.Equal(t, "42501", a.marked("priv").Code)
	require.Contains(t, a.marked("priv").Message, `"Log_Connections"`)
	require.Equal(t, "22023", a.marked("login bool").Code)
	require.Equal(t, "22023", a.marked("login integer").Code)
	require.Nil(t, spellAsk{key: "post_auth_delay", value: "1s"}.marked("login integer\ns\n0\n2147\n"))
	require.Nil(t, spellAsk{key: "x", value: "anything"}.marked("login string\n\n\n\n"))
	require.Nil(t, a.marked("ok"))
	require.Equal(t, "25001", a.marked("iso").Code)
	require.Equal(t, "25001", a.marked("rw").Code)
	require.True(t, grantsSet(pool.Params{{Name: "server_version", Value: "15.8 (Debian 15.8-1)"}}))
	require.False(t, grantsSet(pool.Params{{Name: "server_version", Value: "9.6.24"}}))
	require.False(t, grantsSet(nil))
}
