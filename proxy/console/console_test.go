package console

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// backend records the commands it is given; fail makes the named one fail.
type backend struct {
	calls []string
	fail  map[string]error
}

func (b *backend) do(call string) error {
	b.calls = append(b.calls, call)
	return b.fail[strings.SplitN(call, " ", 2)[0]]
}

func (b *backend) Show(what string) ([]byte, error) {
	if err := b.do("SHOW " + what); err != nil {
		return nil, err
	}
	r := NewResult(nil, Text("what"), Int8("n"))
	r.Row(what, int64(1))
	return r.Done("SHOW"), nil
}
func (b *backend) Pause(db string) error  { return b.do("PAUSE " + db) }
func (b *backend) Resume(db string) error { return b.do("RESUME " + db) }
func (b *backend) Suspend() error         { return b.do("SUSPEND") }
func (b *backend) Disable(db string, disable bool) error {
	if disable {
		return b.do("DISABLE " + db)
	}
	return b.do("ENABLE " + db)
}
func (b *backend) Reconnect(db string) error  { return b.do("RECONNECT " + db) }
func (b *backend) WaitClose(db string) error  { return b.do("WAIT_CLOSE " + db) }
func (b *backend) Kill(db string) error       { return b.do("KILL " + db) }
func (b *backend) KillClient(id string) error { return b.do("KILL_CLIENT " + id) }
func (b *backend) Reload() error              { return b.do("RELOAD") }
func (b *backend) Set(key, value string) ([]byte, error) {
	if err := b.do("SET " + key + "=" + value); err != nil {
		return nil, err
	}
	if key == "listen_port" { // as proxy's: accepted, not changed, and told so
		return Notice(nil, "listen_port cannot change at run time", ""), nil
	}
	return nil, nil
}
func (b *backend) Shutdown(how string) (func(), error) {
	if err := b.do("SHUTDOWN " + how); err != nil {
		return nil, err
	}
	return func() { b.calls = append(b.calls, "after shutdown") }, nil
}

// messages splits an answer into its messages' types and, for CommandComplete and
// ErrorResponse, their tag or SQLSTATE.
func messages(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 5)
		n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
		m := b[:1+n]
		switch b[0] {
		case 'C':
			tag, _, err := wire.CString(wire.Body(m))
			require.NoError(t, err)
			out = append(out, "C "+string(tag))
		case 'E':
			pe, err := pgerr.Parse(wire.Body(m))
			require.NoError(t, err)
			out = append(out, "E "+pe.Code)
		case 'Z':
			out = append(out, "Z "+string(m[5]))
		default:
			out = append(out, string(b[0]))
		}
		b = b[1+n:]
	}
	return out
}

// TestAnswer: the console's statements, as an admin and a stats user send them.
func TestAnswer(t *testing.T) {
	cases := []struct {
		name  string
		role  Role
		q     string
		want  []string // the answer's messages
		calls []string // what the backend was asked
	}{
		{"show", RoleStats, "show pools;", []string{"T", "D", "C SHOW", "Z I"}, []string{"SHOW POOLS"}},
		// PgBouncer's console answers a query without a command as a syntax error.
		{"empty", RoleAdmin, "", []string{"E 08P01", "Z I"}, nil},
		{"only semicolons", RoleAdmin, " ; ;", []string{"E 08P01", "Z I"}, nil},
		{"empty statements around one", RoleAdmin, "; show pools;;", []string{"T", "D", "C SHOW", "Z I"},
			[]string{"SHOW POOLS"}},
		{"two statements", RoleAdmin, "PAUSE app; resume app", []string{"C PAUSE", "C RESUME", "Z I"},
			[]string{"PAUSE app", "RESUME app"}},
		{"no argument", RoleAdmin, "pause", []string{"C PAUSE", "Z I"}, []string{"PAUSE "}},
		{"quoted argument", RoleAdmin, `kill "My;Db"`, []string{"C KILL", "Z I"}, []string{"KILL My;Db"}},
		{"stats user refused", RoleStats, "SHOW POOLS; RELOAD", []string{"T", "D", "C SHOW", "E 08P01", "Z I"},
			[]string{"SHOW POOLS"}},
		{"unknown verb", RoleAdmin, "VACUUM", []string{"E 08P01", "Z I"}, nil},
		{"show without a view", RoleAdmin, "SHOW", []string{"E 08P01", "Z I"}, nil},
		{"too many arguments", RoleAdmin, "SUSPEND now", []string{"E 08P01", "Z I"}, nil},
		{"missing argument", RoleAdmin, "KILL", []string{"E 08P01", "Z I"}, nil},
		{"unterminated quote", RoleAdmin, "KILL 'app", []string{"E 08P01", "Z I"}, nil},
		{"set", RoleAdmin, "SET default_pool_size = 40", []string{"C SET default_pool_size=40", "Z I"},
			[]string{"SET default_pool_size=40"}},
		// The name as written: the backend decides (proxy's refuses it, as PgBouncer does).
		{"set name as written", RoleAdmin, `SET "Default_Pool_Size" = 40`, []string{"C SET Default_Pool_Size=40", "Z I"},
			[]string{"SET Default_Pool_Size=40"}},
		{"set to", RoleAdmin, "set log_connections to '0'", []string{"C SET log_connections=0", "Z I"},
			[]string{"SET log_connections=0"}},
		{"set quoted list", RoleAdmin, "SET admin_users = 'a, b'", []string{"C SET admin_users=a, b", "Z I"},
			[]string{"SET admin_users=a, b"}},
		{"set quoted words", RoleAdmin, "SET server_reset_query = 'DISCARD ALL'",
			[]string{"C SET server_reset_query=DISCARD ALL", "Z I"},
			[]string{"SET server_reset_query=DISCARD ALL"}},
		{"set doubled quote", RoleAdmin, "set application_name_add_host to 'it''s'",
			[]string{"C SET application_name_add_host=it's", "Z I"},
			[]string{"SET application_name_add_host=it's"}},
		{"set double-quoted words", RoleAdmin, `SET server_reset_query = "DISCARD ALL"`,
			[]string{"C SET server_reset_query=DISCARD ALL", "Z I"},
			[]string{"SET server_reset_query=DISCARD ALL"}},
		{"set empty string", RoleAdmin, "SET server_reset_query = ''", []string{"C SET server_reset_query=", "Z I"},
			[]string{"SET server_reset_query="}},
		{"set unquoted words", RoleAdmin, "SET server_reset_query = DISCARD ALL", []string{"E 08P01", "Z I"}, nil},
		{"set unquoted list", RoleAdmin, "SET admin_users = a, b", []string{"E 08P01", "Z I"}, nil},
		{"set two strings", RoleAdmin, "SET server_reset_query = 'DISCARD' 'ALL'", []string{"E 08P01", "Z I"}, nil},
		{"set no value", RoleAdmin, "SET server_reset_query =", []string{"E 08P01", "Z I"}, nil},
		{"set without =", RoleAdmin, "SET a b", []string{"E 08P01", "Z I"}, nil},
		{"set with a notice", RoleAdmin, "SET listen_port = 1", []string{"N", "C SET listen_port=1", "Z I"},
			[]string{"SET listen_port=1"}},
		{"set ignored", RoleAdmin, "SET client_encoding = 'UTF8'", []string{"N", "C SET", "Z I"}, nil},
		{"set ignored, stats user", RoleStats, "set DateStyle to ISO; SET extra_float_digits = 3; show pools",
			[]string{"N", "C SET", "N", "C SET", "T", "D", "C SHOW", "Z I"}, []string{"SHOW POOLS"}},
		{"set ignored needs one value", RoleAdmin, "SET TimeZone = Europe Paris", []string{"E 08P01", "Z I"}, nil},
		{"error stops the rest", RoleAdmin, "RECONNECT; KILL; RESUME", []string{"C RECONNECT", "E 08P01", "Z I"},
			[]string{"RECONNECT "}},
		{"backend error", RoleAdmin, "RELOAD; RESUME", []string{"E 22023", "Z I"}, []string{"RELOAD"}},
		{"internal error", RoleAdmin, "WAIT_CLOSE", []string{"E XX000", "Z I"}, []string{"WAIT_CLOSE "}},
		{"shutdown", RoleAdmin, "SHUTDOWN WAIT_FOR_CLIENTS", []string{"C SHUTDOWN", "Z I"},
			[]string{"SHUTDOWN WAIT_FOR_CLIENTS"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &backend{fail: map[string]error{
				"RELOAD":     pgerr.New(pgerr.InvalidParameterValue, "reload failed"),
				"WAIT_CLOSE": errors.New("not a pgerr"),
			}}
			out, after, failed := Client{Backend: b, Role: c.role, User: "u"}.Answer(c.q)
			got := messages(t, out)
			require.Equal(t, c.want, got)
			require.Equal(t, c.calls, b.calls)
			if last := c.want[len(c.want)-2]; strings.HasPrefix(last, "E ") {
				require.NotNil(t, failed)
				require.Equal(t, strings.TrimPrefix(last, "E "), failed.Code)
			} else {
				require.Nil(t, failed)
			}
			if strings.HasPrefix(c.q, "SHUTDOWN") {
				require.NotNil(t, after)
				after()
				require.Equal(t, "after shutdown", b.calls[len(b.calls)-1])
			} else {
				require.Nil(t, after)
			}
		})
	}
}

// TestStatsUserDetail: a stats user's refusal says why and what is allowed.
func TestStatsUserDetail(t *testing.T) {
	_, _, failed := Client{Backend: &backend{}, Role: RoleStats, User: "watcher"}.Answer("PAUSE")
	require.NotNil(t, failed)
	require.Equal(t, pgerr.ProtocolViolation, failed.Code)
	require.Contains(t, failed.Detail, `"watcher"`)
	require.Contains(t, failed.Detail, "only SHOW")
}

func TestSplitStatements(t *testing.T) {
	require.Equal(t, []string{"a", "b 'x;y'", `c "p;q"`}, splitStatements(` a ; b 'x;y';;c "p;q";`))
	require.Nil(t, splitStatements(" ;\n; "))
}

func TestTokenize(t *testing.T) {
	toks, err := tokenize(`SET  x='it''s'"Q""d"=1`)
	require.NoError(t, err)
	require.Equal(t, []token{{"SET", 3, 'w'}, {"x", 1, 'w'}, {"=", 1, '='}, {"it's", 7, '\''}, {`Q"d`, 6, '"'},
		{"=", 1, '='}, {"1", 1, 'w'}}, toks, "lengths as written, quotes included")
	_, err = tokenize(`KILL "x`)
	require.Error(t, err)
	for _, bad := range []string{"SET x = 1.5", "SET x = -1", "PAUSE my-db", "SET a = b, c", "PAUSE café"} {
		_, err = tokenize(bad)
		require.ErrorContains(t, err, "invalid command", bad)
	}
}

// TestResultEncoding: a result set's RowDescription, DataRows and CommandComplete, with
// NULLs, integers, durations in microseconds and bools as 0/1.
func TestResultEncoding(t *testing.T) {
	r := NewResult(nil, Text("a"), Int4("b"), Int8("c"), Text("d"))
	r.Row("x", 5, int64(-7), nil)
	r.Row("", uint32(1), true, "y")
	r.Row("z", 0, 1500*time.Microsecond, "")
	out := r.Done("SHOW")
	require.Equal(t, []string{"T", "D", "D", "D", "C SHOW"}, messages(t, out))
	var rows [][]string
	for b := out; len(b) > 0; {
		n := int(binary.BigEndian.Uint32(b[1:]))
		if b[0] == 'D' {
			body := b[5 : 1+n]
			cols := int(binary.BigEndian.Uint16(body))
			body = body[2:]
			var row []string
			for range cols {
				l := int32(binary.BigEndian.Uint32(body))
				body = body[4:]
				if l < 0 {
					row = append(row, "NULL")
					continue
				}
				row = append(row, string(body[:l]))
				body = body[l:]
			}
			rows = append(rows, row)
		}
		b = b[1+n:]
	}
	require.Equal(t, [][]string{{"x", "5", "-7", "NULL"}, {"", "1", "1", "y"}, {"z", "0", "1500", ""}}, rows)
	require.Panics(t, func() { r.Row("only one") }, "values must match the columns")
}

// FuzzAnswer: whatever text a console client sends, the answer is whole messages ending
// with one ReadyForQuery, an error carries a SQLSTATE, and nothing panics.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{"SHOW POOLS", "pause; resume", `kill "a""b"`, "SET x = 'y'", "SET a b", "'", `"`,
		";;", "SHUTDOWN WAIT_FOR_CLIENTS", "KILL_CLIENT 1, 2", "show", "\x00"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, q string, admin bool) {
		role := RoleStats
		if admin {
			role = RoleAdmin
		}
		b := &backend{fail: map[string]error{"RELOAD": errors.New("no")}}
		out, _, failed := Client{Backend: b, Role: role, User: "u"}.Answer(q)
		msgs := messages(t, out)
		require.NotEmpty(t, msgs)
		require.Equal(t, "Z I", msgs[len(msgs)-1], "ends with ReadyForQuery")
		for _, m := range msgs[:len(msgs)-1] {
			require.NotEqual(t, byte('Z'), m[0], "one ReadyForQuery")
			if m[0] == 'E' {
				require.Len(t, strings.TrimPrefix(m, "E "), 5, "a SQLSTATE")
				require.NotNil(t, failed)
			}
		}
		if !admin {
			for _, c := range b.calls {
				require.True(t, strings.HasPrefix(c, "SHOW "), "a stats user ran %q", c)
			}
		}
	})
}

// TestSetIgnored: the session settings drivers send on connect are answered as PgBouncer
// answers them, a NOTICE "SET ignored" and SET, whatever the value and the user's role.
func TestSetIgnored(t *testing.T) {
	for _, key := range []string{"client_encoding", "default_transaction_isolation", "standard_conforming_strings",
		"DateStyle", "TimeZone", "extra_float_digits"} {
		b := &backend{}
		out, _, failed := Client{Backend: b, Role: RoleStats, User: "u"}.Answer("SET " + key + " = 'x'")
		require.Nil(t, failed, key)
		require.Equal(t, []string{"N", "C SET", "Z I"}, messages(t, out), key)
		n := int(binary.BigEndian.Uint32(out[1:]))
		notice, err := pgerr.Parse(wire.Body(out[:1+n]))
		require.NoError(t, err)
		require.Equal(t, "NOTICE", notice.Severity)
		require.Equal(t, "00000", notice.Code)
		require.Equal(t, "SET ignored", notice.Message)
		require.Empty(t, b.calls, "nothing is set")
	}
}
