package console

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// TestGrammarAsPgBouncer: statements answered as PgBouncer 1.18's console answers them
// (run on loopback with an admin user, December 2026): "syntax" is its "invalid command
// ..., use SHOW HELP;", "bad" its "bad arguments", both 08P01; else the backend gets the
// call. Its grammar takes a word of letters, digits and underscores, a "quoted
// identifier", and for SET's value a 'string'; the backend then parses the value (an
// integer as C's strtol does: 0x10 is 16). pgmux took any run of characters as a word
// (SET x = 1.5, SET x = -1, PAUSE my-db) and had no limit on a command or its argument.
func TestGrammarAsPgBouncer(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ q, want string }{
		{"SET max_client_conn = 150", "SET max_client_conn=150"},
		{"SET max_client_conn = 1.5", "syntax"},
		{"SET max_client_conn = '1.5'", "SET max_client_conn=1.5"}, // its parser refuses it: SET failed
		{"SET max_client_conn = 0x10", "SET max_client_conn=0x10"},
		{"SET max_client_conn = '0x10'", "SET max_client_conn=0x10"},
		{"SET max_client_conn = 010", "SET max_client_conn=010"},
		{"SET max_client_conn = -1", "syntax"},
		{"SET max_client_conn = '-1'", "SET max_client_conn=-1"},
		{"SET max_client_conn = 1e3", "SET max_client_conn=1e3"},
		{`SET max_client_conn = "200"`, "SET max_client_conn=200"},
		{"SET max_client_conn TO 160", "SET max_client_conn=160"},
		{"set max_client_conn=151", "SET max_client_conn=151"},
		{"SET max_client_conn TO'5'", "SET max_client_conn=5"},
		{`SET "max_client_conn" = 163`, "SET max_client_conn=163"},
		{"SET Max_Client_Conn = 162", "SET Max_Client_Conn=162"}, // its lookup refuses it: SET failed
		{"SET query_timeout = 1.5", "syntax"},
		{"SET query_timeout = '1.5'", "SET query_timeout=1.5"},
		{"SET query_timeout = 2min", "SET query_timeout=2min"},
		{"SET pool_mode = session", "SET pool_mode=session"},
		{"SET pool_mode = ses-sion", "syntax"},
		{"SET server_reset_query = DISCARD ALL", "syntax"},
		{`SET server_reset_query = "discard all"`, "SET server_reset_query=discard all"},
		{"SET server_reset_query = ''", "SET server_reset_query="},
		{"SET max_client_conn 150", "syntax"},
		{"SET max_client_conn = 150, 2", "syntax"},
		{"SET max_client_conn = 5.", "syntax"},
		{"SET max_client_conn = '1' '2'", "syntax"},
		{"SET max_client_conn =", "syntax"},
		{"SET", "syntax"},
		{`SET "" = 1`, "bad"},
		{"SET " + long(63) + " = 1", "SET " + long(63) + "=1"},
		{"SET " + long(64) + " = 1", "bad"},
		{"PAUSE " + long(63), "PAUSE " + long(63)},
		{"PAUSE " + long(64), "bad"},
		{`PAUSE "` + long(62) + `"`, "bad"}, // 64 bytes as written
		{`PAUSE "` + long(61) + `"`, "PAUSE " + long(61)},
		{`PAUSE "a""b"`, `PAUSE a"b`},
		{"PAUSE 'app'", "syntax"},
		{"PAUSE app-1", "syntax"},
		{`PAUSE "app-1"`, "PAUSE app-1"},
		{"RESUME app.x", "syntax"},
		{"SHOW " + long(64), "bad"},
		{`SHOW "pools"`, "SHOW POOLS"},
		{"SHOW 'pools'", "syntax"},
		{"SHOW pools extra", "syntax"},
		{`"SHOW" pools`, "SHOW POOLS"},
		{"SUSPENDXXXXXXXXXX", "bad"}, // 17 bytes: longer than any verb
		{"SHOW_______________ x", "bad"},
		{"RECONNECT app", "RECONNECT app"},
	} {
		b := &backend{}
		out, _, failed := Client{Backend: b, Role: RoleAdmin, User: "u"}.Answer(c.q)
		switch c.want {
		case "syntax", "bad":
			require.NotNil(t, failed, c.q)
			require.Equal(t, pgerr.ProtocolViolation, failed.Code, c.q)
			word := map[string]string{"syntax": "invalid command", "bad": "bad arguments"}[c.want]
			require.Contains(t, failed.Message, word, c.q)
			require.Empty(t, b.calls, c.q)
		default:
			require.Nil(t, failed, "%s: %v", c.q, failed)
			require.Equal(t, []string{c.want}, b.calls, c.q)
			require.NotEmpty(t, out)
		}
	}
}
