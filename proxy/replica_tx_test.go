package proxy

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/wire"
)

// TestROTxRequestFits: which buffered extended-protocol requests that begin a read-only
// transaction may go to a standby (replica_tx.go).
func TestROTxRequestFits(t *testing.T) {
	sync, flush := &pgproto3.Sync{}, &pgproto3.Flush{}
	const begin, sel, commit, insert = "BEGIN READ ONLY", "SELECT 1", "COMMIT", "INSERT INTO t VALUES (1)"
	for _, tt := range []struct {
		name    string
		msgs    []pgproto3.FrontendMessage
		partial bool // a message cut short follows
		fits    bool
	}{
		{"transaction left open", seq(begin, sel, sync), false, true},
		{"read-only transaction whole", seq(begin, sel, commit, sync), false, true},
		{"rolled back", seq(begin, sel, "ROLLBACK", sync), false, true},
		{"write after COMMIT", seq(begin, sel, commit, insert, sync), false, false},
		{"write after END", seq(begin, "END", insert, sync), false, false},
		{"write after ROLLBACK", seq(begin, "rollback", insert, sync), false, false},
		{"write before COMMIT: 25006 as on the primary", seq(begin, insert, commit, sync), false, true},
		{"ROLLBACK TO SAVEPOINT ends nothing", seq(begin, "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", insert, sync), false, true},
		{"Flush between COMMIT and Sync", seq(begin, commit, flush, sync), false, true},
		{"Flush-driven, no Sync", seq(begin, sel, flush), false, false},
		{"Flush-driven, ended", seq(begin, sel, commit, flush), false, false},
		{"not all here", seq(begin, sel), true, false},
		{"ended, its Sync not here", seq(begin, commit), true, false},
		{"next request not all here", seq(begin, sel, sync, commit), true, false},
		{"next request's start", seq(begin, sel, sync), true, true},
		{"another request after the end", seq(begin, commit, sync, insert, sync), false, true},
		{"end and write in the next request", seq(begin, sel, sync, commit, insert, sync), false, false},
		{"end in the next request", seq(begin, sel, sync, commit, sync, insert, sync), false, true},
		{"switched to read-write, then a write", seq(begin, "SET TRANSACTION READ WRITE", insert, commit, sync), false, false},
		{"switched in the next request", seq(begin, sync, "SET transaction_read_only = off", insert, sync), false, false},
		{"switched after the end: routed anew", seq(begin, commit, sync, "SET TRANSACTION READ WRITE", sync), false, true},
		{"a Query in the pipeline", seq(begin, &pgproto3.Query{String: "SELECT 1"}, sync), false, false},
		{"an unknown named statement", seq(begin, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync), false, false},
		{"a named statement parsed here", seq(begin, &pgproto3.Parse{Name: "s1", Query: commit},
			&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync, insert, sync), false, true},
		{"the same, with a write after", seq(begin, &pgproto3.Parse{Name: "s1", Query: commit},
			&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, insert, sync), false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := bufferedSession(t, tt.msgs, tt.partial)
			require.Equal(t, tt.fits, s.roTxRequestFits())
		})
	}
}

// seq is a client's extended-protocol messages: for each string, Parse, Bind, Describe
// and Execute of that statement (unnamed); other parts as they are.
func seq(parts ...any) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, &pgproto3.Parse{Query: p}, &pgproto3.Bind{},
				&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{})
		case pgproto3.FrontendMessage:
			out = append(out, p)
		}
	}
	return out
}

// bufferedSession is a session whose client sent msgs (and, with partial, the start of a
// message cut short), all buffered, the first one's header read; n is its body's length.
func bufferedSession(t *testing.T, msgs []pgproto3.FrontendMessage, partial bool) (s *Session, n int) {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		buf, err = m.Encode(buf)
		require.NoError(t, err)
	}
	if partial {
		buf = append(buf, 'P', 0, 0, 0, 40, 0, 'S')
	}
	s = &Session{sessionWork: newWork(), rd: wire.NewReader(bytes.NewReader(buf))}
	_, n, err := s.rd.Next()
	require.NoError(t, err)
	_, err = s.rd.Peek(len(buf) - wire.HeaderLen) // all of it buffered
	require.NoError(t, err)
	return s, n
}
