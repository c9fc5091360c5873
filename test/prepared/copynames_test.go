package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyQueryNames: a Query of several statements with a COPY and SQL PREPAREs or
// EXECUTEs of the client's statements, then what the client does with those names,
// byte for byte against a direct connection. In cache mode such a Query went as written
// and its PREPAREs were not recorded: a Parse of the name got ParseComplete ("1Z" for
// PostgreSQL's "EZ") and a second PREPARE, as a Query or with the extended protocol,
// succeeded ("CZ", "12CZ" for 42P05). In both modes "EXECUTE x; COPY t FROM STDIN" of a
// Parsed x lost the client: pgmux's Close of the server's copy of x, sent behind the
// Query, reached the server in its copy-in; so did the state check of a pinned client
// whose Query deallocated a statement ("DEALLOCATE x; PREPARE x ...; COPY t FROM STDIN",
// both modes). In cache mode the client is not pinned (one
// server for it and another client, which finds no statement under a client's name).
func TestCopyQueryNames(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	copyIn := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{query(sql), &pgproto3.CopyData{Data: []byte("1\n2\n")}, &pgproto3.CopyDone{}}
	}
	cases := map[string][]step{
		"PREPARE and COPY FROM, then Parse": {
			s("C?CZ", copyIn("PREPARE cp AS SELECT count(*) FROM t; COPY t FROM STDIN")...),
			s("EZ", parse("cp", "SELECT 'proto'"), syncMsg),
			s("2DCZ", bind("", "cp"), execute("", 0), syncMsg),
			s("tTZ", describeStmt("cp"), syncMsg),
		},
		"COPY FROM, then PREPARE": {
			s("?CCZ", copyIn("COPY t FROM STDIN; PREPARE cp AS SELECT count(*) FROM t")...),
			s("EZ", query("PREPARE cp AS SELECT 2")),
			s("TDCZ", query("EXECUTE cp")),
			s("CZ", query("DEALLOCATE cp")),
			s("EZ", query("EXECUTE cp")),
		},
		"then extended PREPARE and DEALLOCATE": {
			s("C?CZ", copyIn("PREPARE cp AS SELECT count(*) FROM t; COPY t FROM STDIN")...),
			s("12EZ", parse("", "PREPARE cp AS SELECT 2"), bind("", ""), execute("", 0), syncMsg),
			s("TDCZ", query("EXECUTE cp")),
			s("12CZ", parse("", "DEALLOCATE cp"), bind("", ""), execute("", 0), syncMsg),
			s("1Z", parse("cp", "SELECT 'proto'"), syncMsg),
		},
		"COPY TO": {
			s("C???CZ", query("PREPARE co AS SELECT 5; COPY (SELECT 1) TO STDOUT")),
			s("EZ", parse("co", "SELECT 'proto'"), syncMsg),
			s("TDCZ", query("EXECUTE co")),
		},
		"EXECUTE of a Parsed name and COPY FROM": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("TDC?CZ", copyIn("EXECUTE x; COPY t FROM STDIN")...),
			s("TDCZ", query("SELECT count(*) FROM t")),
			s("?CTDCZ", copyIn("COPY t FROM STDIN; EXECUTE x")...),
			s("EZ", query("PREPARE x AS SELECT 1")),
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
		},
		"DEALLOCATE, PREPARE and COPY FROM": {
			s("1Z", parse("x", "SELECT 'a'"), syncMsg),
			s("CC?CZ", copyIn("DEALLOCATE x; PREPARE x AS SELECT 'sql'; COPY t FROM STDIN")...),
			s("2DCZ", bind("", "x"), execute("", 0), syncMsg),
			s("EZ", parse("x", "SELECT 'proto'"), syncMsg),
		},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, mode: mode})
			for name, steps := range cases {
				t.Run(name, func(t *testing.T) {
					sameAsDirectShared(t, m, mode, database(t, m.pg, "copynames", "CREATE TABLE t (a int)"), steps)
				})
			}
		})
	}
}

// TestCopyQueryNamesTwoClients: two clients on one server (default_pool_size = 1),
// each request compared with two direct connections: what a Query with a COPY leaves on
// the server under the client's names is gone before the other client's request.
func TestCopyQueryNamesTwoClients(t *testing.T) {
	a := func(want string, msgs ...pgproto3.FrontendMessage) turn { return turn{0, step{msgs, want}} }
	b := func(want string, msgs ...pgproto3.FrontendMessage) turn { return turn{1, step{msgs, want}} }
	copyIn := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{query(sql), &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{}}
	}
	cases := map[string][]turn{
		"EXECUTE and COPY, b PREPAREs": {
			a("1Z", parse("x", "SELECT 'a'"), syncMsg),
			a("TDC?CZ", copyIn("EXECUTE x; COPY t FROM STDIN")...),
			b("CZ", query("PREPARE x AS SELECT 'b'")),
			b("TDCZ", query("EXECUTE x")),
			a("TDCZ", query("EXECUTE x")),
		},
		"PREPARE and COPY, b EXECUTEs": {
			a("C?CZ", copyIn("PREPARE x AS SELECT 'a'; COPY t FROM STDIN")...),
			b("EZ", query("EXECUTE x")),
			b("CZ", query("PREPARE x AS SELECT 'b'")),
			a("TDCZ", query("EXECUTE x")),
			b("TDCZ", query("EXECUTE x")),
		},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 1, mode: mode})
			for name, turns := range cases {
				t.Run(name, func(t *testing.T) {
					twoClients(t, m, database(t, m.pg, "copytwo", "CREATE TABLE t (a int)"), turns)
				})
			}
		})
	}
}
