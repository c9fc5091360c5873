package proxy

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/sqlscan"
)

func TestSQLStatementOf(t *testing.T) {
	for _, tc := range []struct {
		q    string
		kind sqlscan.Kind
		name string
		tok  string // the name token as written; "" when not rewritable
	}{
		{"PREPARE q (int, text) AS SELECT $1", sqlscan.KindPrepare, "q", "q"},
		{"  /* c */ prepare \"My Q\" AS SELECT 1;", sqlscan.KindPrepare, "My Q", `"My Q"`},
		{"EXECUTE q(1, 'a')", sqlscan.KindExecute, "q", "q"},
		{"execute Q", sqlscan.KindExecute, "q", "Q"},
		{"DEALLOCATE PREPARE q", sqlscan.KindDeallocate, "q", "q"},
		{"DEALLOCATE prepare", sqlscan.KindDeallocate, "prepare", "prepare"},
		{"DEALLOCATE ALL", 0, "", ""},
		{"PREPARE TRANSACTION 'x'", 0, "", ""},
		{"SELECT 1; EXECUTE q", 0, "", ""},
		{"PREPARE a AS SELECT 1; EXECUTE a", 0, "", ""},
		{"SELECT 'EXECUTE q'", 0, "", ""},
		{"PREPARE all AS SELECT 1", 0, "", ""}, // reserved: the server's syntax error
		{"EXECUTE select", 0, "", ""},
		{`EXECUTE "select"`, sqlscan.KindExecute, "select", `"select"`},
		{"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE q(1)", sqlscan.KindExecute, "q", "q"},
		{"explain analyze verbose execute Q", sqlscan.KindExecute, "q", "Q"},
		{"EXPLAIN SELECT 1", 0, "", ""},
	} {
		t.Run(tc.q, func(t *testing.T) {
			st, ok := sqlStatementOf(tc.q)
			require.Equal(t, tc.tok != "", ok)
			if !ok {
				return
			}
			require.Equal(t, tc.kind, st.Kind)
			require.Equal(t, tc.name, st.Name)
			require.Equal(t, tc.tok, tc.q[st.start:st.end])
		})
	}
}

func TestErrFix(t *testing.T) {
	// The client wrote "EXECUTE é(1, 2, x)"; pgmux sent the server's name instead.
	orig := "EXECUTE é(1, 2, x)"
	start, end := len("EXECUTE "), len("EXECUTE é")
	server := "pgmux_0123"
	at, delta := positionFix(orig, start, end, server)
	require.Equal(t, 8+len(server), at)
	require.Equal(t, len(server)-1, delta)
	f := &errFix{from: server, to: "é", at: at, delta: delta}
	got := f.apply(errorMsg("SERROR", "C42601", `Mwrong number of parameters for prepared statement "pgmux_0123"`,
		`Dstatement "pgmux_0123" takes 1`, "P"+strconv.Itoa(at+8), "Fprepare.c"))
	require.Equal(t, errorMsg("SERROR", "C42601", `Mwrong number of parameters for prepared statement "é"`,
		`Dstatement "é" takes 1`, "P"+strconv.Itoa(at+8-delta), "Fprepare.c"), got)
	// A position before the name stays; a nil fix changes nothing.
	m := errorMsg("SERROR", "C42601", "Msyntax error", "P3")
	require.Equal(t, m, f.apply(m))
	require.Equal(t, m, (*errFix)(nil).apply(m))
}

func TestMayInvalidate(t *testing.T) {
	for q, want := range map[string]bool{
		"ALTER TABLE t ADD COLUMN c int": true,
		"drop type mood":                 true,
		"CREATE OR REPLACE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql": true,
		"CREATE TABLE t (a int)":  false,
		"SELECT 1":                false,
		"SELECT 1; DROP TABLE x":  true,
		"SELECT 'drop'; SELECT 2": false,
		"/* alter */ SELECT 1":    false,
		// A trailing ';' (pgbench's, most drivers') leaves one statement.
		"ALTER TABLE t ADD c int;\n":                true,
		"SELECT abalance FROM t WHERE aid = 7; ":    false,
		"SELECT 'drop;' ;":                          false,
		"DO $$BEGIN EXECUTE 'DROP TABLE x'; END$$;": true,
		// Migrations wrap DDL in DO blocks: statements inside count like top-level ones.
		"DO $$BEGIN ALTER TABLE t ADD c int; END$$":                                                                 true,
		"do $$ begin if not exists (select 1) then drop type mood; create type mood as enum ('a'); end if; end $$;": true,
		"DO 'BEGIN EXECUTE ''ALTER TABLE t ADD c int''; END'":                                                       true,
		"DO $$BEGIN EXECUTE format('ALTER TABLE %I ADD c int', 't'); END$$":                                         true, // cannot be read
		"DO $$BEGIN RAISE NOTICE 'alter; drop'; END$$":                                                              false,
		"DO $$BEGIN INSERT INTO audit VALUES ('dropped'); END$$":                                                    false,
	} {
		require.Equal(t, want, mayInvalidate(q), q)
	}
}

func TestLookupFailed(t *testing.T) {
	require.True(t, lookupFailed(errorMsg("SERROR", "CXX000", "Mcache lookup failed for type 16390")))
	require.False(t, lookupFailed(errorMsg("SERROR", "CXX000", "Mcache lookup failed for relation 16390")))
	require.False(t, lookupFailed(errorMsg("SERROR", "C42704", "Mtype \"x\" does not exist")))
}

// TestByNameNeedPrepareAfterDeallocate: in a Query sqlByName handles, a PREPARE of a name
// the client has fails and pins nothing, but after a DEALLOCATE of that name (or
// DEALLOCATE ALL) in the same Query it makes a statement on the server: in unnamed mode
// the client keeps that server (pinPrepare) until the state check finds the statement
// gone. In cache mode the statement is pgmux's (namesIn records it) and pins nothing,
// but for a PREPARE pgmux cannot see (in a DO block); in a Query with a COPY too (its
// closes wait for the next message, sqlmulti.go closeLeft).
func TestByNameNeedPrepareAfterDeallocate(t *testing.T) {
	for _, tc := range []struct {
		q                   string
		unnamedPins, cached bool
	}{
		{"SELECT 1; PREPARE a AS SELECT 5", false, false},
		{"DEALLOCATE a; PREPARE a AS SELECT 5; EXECUTE a", true, false},
		{"DEALLOCATE PREPARE a; PREPARE a AS SELECT 5", true, false},
		{"DEALLOCATE ALL; PREPARE a AS SELECT 5", true, false},
		{"DEALLOCATE b; PREPARE a AS SELECT 5", false, false},
		{"PREPARE a AS SELECT 5; DEALLOCATE a", false, false},
		{"SELECT 1; PREPARE b AS SELECT 5", true, false},
		{"PREPARE b AS SELECT 5; COPY t FROM STDIN", true, false},
		{"SELECT 1; DO $$BEGIN EXECUTE 'PREPARE b AS SELECT 5'; END$$", true, true},
	} {
		for mode, want := range map[prepMode]bool{prepUnnamed: tc.unnamedPins, prepCache: tc.cached} {
			s := &Session{srv: &Server{}, sessionWork: newWork()}
			s.prep = mode
			s.keep("a", newStmtDef("SELECT $1::int", nil, "", 0))
			pin, _ := s.byNameNeed(tc.q, sqlscan.LeadOf(tc.q), pinPrepare, false)
			require.Equal(t, want, pin&pinPrepare != 0, "%s (mode %d)", tc.q, mode)
		}
	}
}

// TestNamesInCopyClosedOrPinned: a Query that names a statement the client made with
// Parse gets a copy of it on the server under the client's name. The copy is closed
// after the Query unless the Query may make the client's own statement of that name (a
// PREPARE after a DEALLOCATE of it or DEALLOCATE ALL), and then the client keeps the
// server: no copy is ever left on a server another client may get. Closing it after a
// PREPARE that cannot succeed (42P05) was missing in unnamed mode and with a COPY. With a
// COPY the closes wait for the next message (p.copies), which sqlByName leaves to closeLeft.
func TestNamesInCopyClosedOrPinned(t *testing.T) {
	for _, tc := range []struct {
		q    string
		kept bool // the copy may stay: the PREPARE may make the client's statement
	}{
		{"PREPARE a AS SELECT 5", false},
		{"PREPARE a AS SELEC 5", false},
		{"EXECUTE a; PREPARE a AS SELECT 5", false},
		{"PREPARE a AS SELECT 5; DEALLOCATE a", false},
		{"PREPARE a AS SELECT 5; COPY t FROM STDIN", false},
		{"SELECT 1/0; DEALLOCATE a; PREPARE a AS SELECT 5", true},
		{"DEALLOCATE ALL; PREPARE a AS SELECT 5", true},
		{"DISCARD ALL; PREPARE a AS SELECT 5", true},
		{"DEALLOCATE a; PREPARE a AS SELECT 5; COPY t FROM STDIN", true},
		{"DEALLOCATE b; PREPARE a AS SELECT 5", false},
		{"EXECUTE a; SELECT 1", false},
	} {
		for _, mode := range []prepMode{prepUnnamed, prepCache} {
			s := &Session{srv: &Server{}, sessionWork: newWork()}
			s.prep = mode
			s.keep("a", newStmtDef("SELECT 1", nil, "", 0))
			p := s.namesIn(tc.q, sqlscan.LeadOf(tc.q))
			require.NotNil(t, p, tc.q)
			require.Len(t, p.names, 1, tc.q)
			closed := slices.Contains(p.after, "a")
			recorded := mode == prepCache
			require.Equal(t, strings.Contains(tc.q, "COPY"), p.copies, tc.q)
			require.Equal(t, !tc.kept || recorded, closed, "%s (mode %d)", tc.q, mode)
			if !closed {
				pin, _ := s.byNameNeed(tc.q, sqlscan.LeadOf(tc.q), pinPrepare, false)
				require.NotZero(t, pin&pinPrepare, "%s (mode %d): a copy may stay, the client must keep its server", tc.q, mode)
			}
		}
	}
}
