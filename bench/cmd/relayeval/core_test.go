package main

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

func encodeBackend(t *testing.T, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = m.Encode(b)
		require.NoError(t, err)
	}
	return b
}

// TestLinkRelease: when the server goes back to the pool.
func TestLinkRelease(t *testing.T) {
	z := func(s byte) pgproto3.BackendMessage { return &pgproto3.ReadyForQuery{TxStatus: s} }
	cc := &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}
	for _, tc := range []struct {
		name    string
		client  []pgproto3.FrontendMessage
		server  []pgproto3.BackendMessage
		release bool
	}{
		{"query", []pgproto3.FrontendMessage{&pgproto3.Query{String: "x"}}, []pgproto3.BackendMessage{cc, z('I')}, true},
		{"in a transaction", []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}}, []pgproto3.BackendMessage{cc, z('T')}, false},
		{"two queries, one answer", []pgproto3.FrontendMessage{&pgproto3.Query{String: "a"}, &pgproto3.Query{String: "b"}}, []pgproto3.BackendMessage{cc, z('I')}, false},
		{"two queries, two answers", []pgproto3.FrontendMessage{&pgproto3.Query{String: "a"}, &pgproto3.Query{String: "b"}}, []pgproto3.BackendMessage{cc, z('I'), cc, z('I')}, true},
		{"next request begun", []pgproto3.FrontendMessage{&pgproto3.Query{String: "a"}, &pgproto3.Parse{Query: "b"}}, []pgproto3.BackendMessage{cc, z('I')}, false},
		{"flush without sync", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "b"}, &pgproto3.Flush{}}, []pgproto3.BackendMessage{&pgproto3.ParseComplete{}}, false},
		{"extended", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "b"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			[]pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, cc, z('I')}, true},
		{"copy in", []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{}},
			[]pgproto3.BackendMessage{&pgproto3.CopyInResponse{}, cc, z('I')}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l link
			c := encode(t, tc.client...)
			fwd, term, need, err := l.scanClient(c)
			require.NoError(t, err)
			require.False(t, term)
			require.Zero(t, need)
			require.Equal(t, len(c), fwd)
			s := encodeBackend(t, tc.server...)
			// fed in two parts split anywhere, as reads deliver it
			for i := 0; i <= len(s); i++ {
				l2 := l
				fwd1, rel1, _, err := l2.scanServer(s[:i])
				require.NoError(t, err)
				require.False(t, rel1 && fwd1 < len(s), "released before the end")
				fwd2, rel2, _, err := l2.scanServer(s[fwd1:])
				require.NoError(t, err)
				require.Equal(t, len(s), fwd1+fwd2)
				require.Equal(t, tc.release, rel1 || rel2, "split at %d", i)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	var l link
	_, _, _, err := l.scanClient([]byte{'Q', 0, 0, 0, 2})
	require.ErrorIs(t, err, errProtocol)
	_, _, _, err = l.scanServer([]byte{'Z', 0xff, 0, 0, 0})
	require.ErrorIs(t, err, errProtocol)
	kind, n, err := parseFirst([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	require.NoError(t, err)
	require.Equal(t, fpEncryption, kind)
	require.Equal(t, 8, n)
	_, _, err = parseFirst([]byte{0, 0, 0, 8, 0, 0, 0, 1})
	require.ErrorIs(t, err, errProtocol)
	// Terminate stops forwarding before it
	c := []byte{'X', 0, 0, 0, 4}
	fwd, term, _, err := l.scanClient(c)
	require.NoError(t, err)
	require.True(t, term)
	require.Zero(t, fwd)
}
