package hba

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `
# TYPE    DATABASE   USER        ADDRESS          METHOD
local     all        admin                        trust
hostssl   app        all         10.0.0.0/8       scram-sha-256
hostnossl app        all         10.0.0.0/8       reject
host      sameuser   all         192.168.1.0 255.255.255.0 md5   # netmask column
host      "Odd",db2  alice,bob   ::1/128          password
host      all        certuser    all              cert  clientcert=verify-full
host      all        all         fd00::7          MD5
`

// TestMatch: the first rule that fits the connection decides; no rule is nil.
func TestMatch(t *testing.T) {
	rules, err := Parse([]byte(sample))
	require.NoError(t, err)
	require.Len(t, rules, 7)
	local := netip.Addr{}
	cases := []struct {
		name     string
		addr     netip.Addr
		tls      bool
		db, user string
		line     int // 0: no rule
		method   Method
	}{
		{"unix socket", local, false, "any", "admin", 3, Trust},
		{"unix socket, other user", local, false, "any", "eve", 0, ""},
		{"ssl in range", netip.MustParseAddr("10.1.2.3"), true, "app", "eve", 4, SCRAM},
		{"no ssl in range", netip.MustParseAddr("10.1.2.3"), false, "app", "eve", 5, Reject},
		{"v4-mapped address", netip.MustParseAddr("::ffff:10.1.2.3"), true, "app", "eve", 4, SCRAM},
		{"out of range", netip.MustParseAddr("11.0.0.1"), true, "app", "eve", 0, ""},
		{"sameuser", netip.MustParseAddr("192.168.1.50"), false, "carol", "carol", 6, MD5},
		{"sameuser, other db", netip.MustParseAddr("192.168.1.50"), false, "app", "carol", 0, ""},
		{"quoted database", netip.MustParseAddr("::1"), false, "Odd", "bob", 7, Password},
		{"listed database", netip.MustParseAddr("::1"), false, "db2", "alice", 7, Password},
		{"cert, any address", netip.MustParseAddr("203.0.113.9"), true, "x", "certuser", 8, Cert},
		{"single address", netip.MustParseAddr("fd00::7"), false, "x", "y", 9, MD5},
		{"next address", netip.MustParseAddr("fd00::8"), false, "x", "y", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rules.Match(c.addr, c.tls, c.db, c.user)
			if c.line == 0 {
				require.Nil(t, r)
				return
			}
			require.NotNil(t, r)
			require.Equal(t, c.line, r.Line)
			require.Equal(t, c.method, r.Method)
		})
	}
}

// TestParseErrors: a line that cannot be understood fails the whole file, naming the line.
func TestParseErrors(t *testing.T) {
	for text, want := range map[string]string{
		"local all all":                          "line 1: want: local DATABASE USER METHOD",
		"\nhost all all 10.0.0.0/8":              "line 2: want: host DATABASE USER ADDRESS METHOD",
		"host all all 10.0.0.300/8 md5":          `line 1: invalid address "10.0.0.300/8"`,
		"hostgssenc all all all md5":             `line 1: unknown connection type "hostgssenc"`,
		"host all all all ident":                 `line 1: unsupported method "ident"`,
		"# only a comment\n\nlocal all all peer": `line 3: unsupported method "peer"`,
	} {
		_, err := Parse([]byte(text))
		require.Error(t, err, text)
		require.Contains(t, err.Error(), want, text)
	}
	rules, err := Parse([]byte("# nothing\n"))
	require.NoError(t, err)
	require.Empty(t, rules)
	require.Nil(t, rules.Match(netip.Addr{}, false, "db", "u"), "no rule: rejected")
}

// FuzzParse: any file either fails with an error naming a line or gives rules whose
// methods are the supported ones and whose lines are in order; matching never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("host all all 10.0.0.1 255.0.0.0 md5\nlocal \"a b\" x trust"))
	f.Add([]byte("hostssl all all ::/0 cert # tail\n\n#"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, err := Parse(b)
		if err != nil {
			require.Contains(t, err.Error(), "line ")
			return
		}
		last := 0
		for _, r := range rules {
			require.Contains(t, []Method{Trust, Reject, MD5, SCRAM, Password, Cert}, r.Method)
			require.Greater(t, r.Line, last)
			last = r.Line
		}
		for _, a := range []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("::1")} {
			_ = rules.Match(a, true, "db", "user")
			_ = rules.Match(a, false, "all", "sameuser")
		}
	})
}

// TestMatchReplication: as in PostgreSQL's pg_hba.conf, a physical replication
// connection fits only a rule naming the keyword replication ("all" does not), and the
// keyword fits no normal or logical replication connection (a database named
// "replication" is written quoted).
func TestMatchReplication(t *testing.T) {
	rules, err := Parse([]byte(`
host  replication  repl   10.0.0.0/8  scram-sha-256
host  "replication" all   10.0.0.0/8  password
host  all          all    10.0.0.0/8  md5
host  replication  all    all         reject
`))
	require.NoError(t, err)
	a := netip.MustParseAddr("10.1.1.1")
	r := rules.MatchPhysicalReplication(a, false, "repl")
	require.NotNil(t, r)
	require.Equal(t, 2, r.Line, "the replication rule, not all's")
	r = rules.MatchPhysicalReplication(a, false, "other")
	require.NotNil(t, r)
	require.Equal(t, 5, r.Line, "all does not match physical replication")
	require.Nil(t, rules.MatchPhysicalReplication(netip.Addr{}, false, "repl"), "no local rule")

	r = rules.Match(a, false, "replication", "repl")
	require.NotNil(t, r)
	require.Equal(t, 3, r.Line, "a database named replication: the quoted rule, not the keyword's")
	r = rules.Match(a, false, "app", "repl")
	require.NotNil(t, r)
	require.Equal(t, 4, r.Line, "a normal (or logical replication) connection skips the keyword")
}
