package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestBatchCut: where an extended-protocol request sent inside a read-only transaction
// on a standby is split (replica_split.go splitBatchAtEnd): after the Execute that ends
// the transaction, when more is executed before the Sync, or whatever follows when the
// Sync is not here (open); and when more of the request is to be read first.
func TestBatchCut(t *testing.T) {
	sync, flush := &pgproto3.Sync{}, &pgproto3.Flush{}
	const sel, commit, insert = "SELECT 1", "COMMIT", "INSERT INTO t VALUES (1)"
	for _, tt := range []struct {
		name    string
		msgs    []pgproto3.FrontendMessage
		partial bool
		head    int // messages before the cut; 0: not split
	}{
		{"COMMIT, write", seq(commit, insert, sync), false, 4},
		{"read, END, write", seq(sel, "END", insert, sync), false, 8},
		{"ROLLBACK, write, next request", seq("rollback", insert, sync, sel, sync), false, 4},
		{"ABORT, Flush, write", seq("ABORT", flush, insert, sync), false, 4},
		{"only the end", seq(sel, commit, sync), false, 0},
		{"the end, then Flush", seq(commit, flush, sync), false, 0},
		{"parsed after the end, not executed", seq(commit, &pgproto3.Parse{Name: "s", Query: insert}, sync), false, 0},
		{"AND CHAIN goes on", seq("COMMIT AND CHAIN", insert, sync), false, 0},
		{"ROLLBACK TO SAVEPOINT", seq("ROLLBACK TO SAVEPOINT a", insert, sync), false, 0},
		{"the end in the next request", seq(sel, sync, commit, insert, sync), false, 0},
		{"not all here", seq(commit, insert), true, 4},
		{"Flush-driven", seq(commit, insert, flush), false, 4},
		{"Flush-driven, nothing after the end", seq(sel, commit, flush), false, 8},
		{"the end alone, not all here", seq(commit), true, 4},
		{"the end's Execute not here", seq(&pgproto3.Parse{Query: commit}, &pgproto3.Bind{}), true, 0},
		{"nothing ending, not all here", seq(sel), true, 0},
		{"the end bound, then Flush", seq(&pgproto3.Parse{Query: commit}, &pgproto3.Bind{}, flush), true, 0},
		{"an unknown statement", seq(commit, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync), false, 0},
		{"a named statement parsed here", seq(&pgproto3.Parse{Name: "c", Query: commit}, &pgproto3.Bind{PreparedStatement: "c"},
			&pgproto3.Execute{}, insert, sync), false, 3},
		{"a Query in the pipeline", seq(commit, &pgproto3.Query{String: insert}, sync), false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := bufferedSession(t, tt.msgs, tt.partial)
			cut, end, more, ok := s.batchCut()
			require.Equal(t, tt.head > 0, ok)
			require.Equal(t, tt.name == "the end's Execute not here", more, "more to read first")
			if !ok {
				return
			}
			want := 0
			for _, m := range tt.msgs[:tt.head] {
				b, err := m.Encode(nil)
				require.NoError(t, err)
				want += len(b)
			}
			require.Equal(t, want, cut)
			if _, ok := tt.msgs[len(tt.msgs)-1].(*pgproto3.Sync); !ok || tt.partial {
				require.Zero(t, end, "open: the Sync is not here")
				return
			}
			synced := 0
			for i, m := range tt.msgs {
				b, err := m.Encode(nil)
				require.NoError(t, err)
				synced += len(b)
				if _, ok := m.(*pgproto3.Sync); ok && i >= tt.head {
					break
				}
			}
			require.Equal(t, synced, end, "the rest ends with the request's Sync")
		})
	}
}

// TestMayStartReadWrite: which requests move a read-only transaction that has run only
// its BEGIN on a standby to the primary (replica_move.go), and which BEGIN requests
// start such a transaction.
func TestMayStartReadWrite(t *testing.T) {
	sync := &pgproto3.Sync{}
	for _, tt := range []struct {
		name string
		msgs []pgproto3.FrontendMessage
		move bool
	}{
		{"SET TRANSACTION READ WRITE", seq("SET TRANSACTION READ WRITE", "INSERT INTO t VALUES (1)", sync), true},
		{"after a read", seq("SELECT 1", "set transaction_read_only = off", sync), true},
		{"a read", seq("SELECT 1", sync), false},
		{"the switch in the next request", seq("SELECT 1", sync, "SET TRANSACTION READ WRITE", sync), false},
		{"an unknown statement", seq(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync), true},
		{"a Query", seq(&pgproto3.Query{String: "SET TRANSACTION READ WRITE"}), true},
		{"a Query that reads", seq(&pgproto3.Query{String: "SELECT 1"}), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, n := bufferedSession(t, tt.msgs, false)
			typ := firstType(tt.msgs)
			require.Equal(t, tt.move, s.mayStartReadWrite(typ, n))
		})
	}
	for _, tt := range []struct {
		name  string
		msgs  []pgproto3.FrontendMessage
		begin string
		fresh bool
	}{
		{"BEGIN alone", seq("BEGIN READ ONLY", sync), "BEGIN READ ONLY", true},
		{"BEGIN and a read", seq("BEGIN READ ONLY", "SELECT 1", sync), "BEGIN READ ONLY", false},
		{"BEGIN, Sync not here", seq("BEGIN READ ONLY"), "BEGIN READ ONLY", false},
		{"BEGIN with more in its text", seq("BEGIN READ ONLY", sync), "BEGIN READ ONLY; SET LOCAL x = 1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := bufferedSession(t, tt.msgs, false)
			s.noteBegin(tt.begin, true)
			require.Equal(t, tt.fresh, s.roFresh != 0)
		})
	}
}

// TestSetsOnly: which requests leave a read-only transaction that has run only its BEGIN
// on a standby movable to the primary (replica_move.go setsOnly), and the SETs to run
// again there.
func TestSetsOnly(t *testing.T) {
	sync := &pgproto3.Sync{}
	for _, tt := range []struct {
		name string
		msgs []pgproto3.FrontendMessage
		sets string
		ok   bool
	}{
		{"a Query", seq(&pgproto3.Query{String: "SET LOCAL work_mem = '8MB'; SHOW work_mem"}), "SET LOCAL work_mem = '8MB'", true},
		{"a Query that reads", seq(&pgproto3.Query{String: "SHOW work_mem; SELECT 1"}), "", false},
		{"a batch", seq("SET LOCAL a.b = 1", "SHOW a.b", "SET c.d = 2", sync), "SET LOCAL a.b = 1; SET c.d = 2", true},
		{"prepared, not executed", seq(&pgproto3.Parse{Name: "s", Query: "SET LOCAL a.b = 1"}, &pgproto3.Describe{ObjectType: 'S', Name: "s"}, sync), "", true},
		{"a read parsed", seq("SHOW a.b", &pgproto3.Parse{Name: "s", Query: "SELECT 1"}, sync), "", false},
		{"an unknown statement", seq(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync), "", false},
		{"not all here", seq("SET LOCAL a.b = 1"), "", false},
		{"Flush-driven", seq("SET LOCAL a.b = 1", &pgproto3.Flush{}), "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, n := bufferedSession(t, tt.msgs, false)
			typ := firstType(tt.msgs)
			sets, ok := s.setsOnly(typ, n)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.sets, sets)
		})
	}
}

// firstType is the type byte of the first of msgs: a Query, Bind or Parse.
func firstType(msgs []pgproto3.FrontendMessage) byte {
	switch msgs[0].(type) {
	case *pgproto3.Query:
		return 'Q'
	case *pgproto3.Bind:
		return 'B'
	}
	return 'P'
}
