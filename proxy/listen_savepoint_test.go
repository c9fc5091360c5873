package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/sqlscan"
)

func TestSavepointAct(t *testing.T) {
	cases := []struct {
		sql  string
		op   txOp
		name string
		ok   bool
	}{
		{"SAVEPOINT a", opSavepoint, "a", true},
		{"savepoint \"My Point\"", opSavepoint, "My Point", true},
		{"/* c */ RELEASE a", opRelease, "a", true},
		{"RELEASE SAVEPOINT B", opRelease, "b", true},
		{"ROLLBACK TO a", opRollbackTo, "a", true},
		{"rollback work to savepoint a", opRollbackTo, "a", true},
		{"ROLLBACK TRANSACTION TO SAVEPOINT a", opRollbackTo, "a", true},
		{"ROLLBACK", 0, "", false},
		{"ROLLBACK TO", 0, "", false},
		{"SAVEPOINT", 0, "", false},
		{"SAVEPOINT a b", 0, "", false},
		{"RELEASE", 0, "", false},
		{"SELECT 1", 0, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			sts := sqlscan.Scan(tc.sql)
			require.Len(t, sts, 1)
			a, ok := txAct(&sts[0])
			if tc.sql == "ROLLBACK" {
				require.True(t, ok)
				require.Equal(t, opRollback, a.op)
				return
			}
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.op, a.op)
				require.Equal(t, tc.name, a.name)
			}
		})
	}
}

// TestUnlistenStateSavepoints follows statements through unlistenState as the server
// completes them (sent in one go, as a simple Query) and checks which UNLISTENs a
// ReadyForQuery 'I' ends, against PostgreSQL's subtransaction rules.
func TestUnlistenStateSavepoints(t *testing.T) {
	cases := []struct {
		sql  string
		ends int // UNLISTENs that take effect
	}{
		{"BEGIN; UNLISTEN x; SAVEPOINT a; ROLLBACK TO a; COMMIT", 1},
		{"BEGIN; SAVEPOINT a; UNLISTEN x; ROLLBACK TO a; COMMIT", 0},
		{"BEGIN; SAVEPOINT a; UNLISTEN x; RELEASE a; COMMIT", 1},
		{"BEGIN; SAVEPOINT a; SAVEPOINT b; UNLISTEN x; RELEASE b; ROLLBACK TO a; COMMIT", 0},
		{"BEGIN; SAVEPOINT a; UNLISTEN x; SAVEPOINT b; UNLISTEN y; ROLLBACK TO b; RELEASE a; COMMIT", 1},
		{"BEGIN; SAVEPOINT a; UNLISTEN x; SAVEPOINT a; UNLISTEN y; ROLLBACK TO a; COMMIT", 1},
		{"BEGIN; SAVEPOINT a; UNLISTEN x; SAVEPOINT a; RELEASE a; ROLLBACK TO a; COMMIT", 0},
		{"BEGIN; UNLISTEN x; SAVEPOINT a; ROLLBACK TO a; UNLISTEN y; ROLLBACK TO a; COMMIT", 1},
		{"BEGIN; UNLISTEN x; SAVEPOINT a; ROLLBACK TO a; ROLLBACK", 0},
		{"BEGIN; UNLISTEN x; ROLLBACK TO unknown; COMMIT", 0},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			var u unlistenState
			sts := sqlscan.Scan(tc.sql)
			u.sent = unlistenActs(sts, true)
			for i := range sts {
				u.completeTag(tagOf(&sts[i]))
			}
			require.Empty(t, u.sent)
			require.Len(t, u.ready('I', true), tc.ends)
			require.Empty(t, u.marks)
		})
	}
}

// tagOf is the CommandComplete tag PostgreSQL answers st with.
func tagOf(st *sqlscan.Statement) string {
	if a, ok := txAct(st); ok {
		return a.tag
	}
	switch st.Kind {
	case sqlscan.KindBegin:
		return "BEGIN"
	case sqlscan.KindUnlisten, sqlscan.KindUnlistenAll:
		return "UNLISTEN"
	}
	return "SELECT 1"
}
