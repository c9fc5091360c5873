package proxy_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy"
)

// TestQueueBufferFollowsTheServer: a client's response queue uses its server's buffer
// for the link and gives it back at the release (serverState.ring), so that the
// requests of hundreds of clients taking turns on a few servers are queued in memory
// the last transaction kept in cache, not in a cold kilobyte of each client's. After
// 30 clients each ran extended-protocol and simple requests on a pool of 2, no idle
// client holds a buffer and the servers hold theirs. The buffers used to be the
// clients' own (30 of them, idle, and none on the servers).
func TestQueueBufferFollowsTheServer(t *testing.T) {
	h, clients := loopProxyWithClients(t, 30)
	for round := 0; round < 3; round++ {
		for i, c := range clients {
			c.fe.Send(&pgproto3.Parse{Query: "SELECT $1::int + 1"})
			c.fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(strconv.Itoa(i))}})
			c.fe.Send(&pgproto3.Describe{ObjectType: 'P'})
			c.fe.Send(&pgproto3.Execute{})
			c.fe.Send(&pgproto3.Sync{})
			c.fe.Send(&pgproto3.Query{String: "SELECT " + strconv.Itoa(i)})
			require.NoError(t, c.fe.Flush())
		}
		for i, c := range clients {
			require.Equal(t, []string{strconv.Itoa(i + 1)}, c.until(t, "the extended request"))
			require.Equal(t, []string{strconv.Itoa(i)}, c.until(t, "the simple request"))
		}
	}
	// A transaction's requests queue in the buffer it borrowed for its whole link.
	a := clients[0]
	for _, q := range []string{"BEGIN", "SELECT 1", "SELECT 2", "COMMIT"} {
		a.fe.Send(&pgproto3.Query{String: q})
	}
	require.NoError(t, a.fe.Flush())
	for _, want := range [][]string{nil, {"1"}, {"2"}, nil} {
		require.Equal(t, want, a.until(t, "the transaction"))
	}
	own, lent := proxy.QueueBuffers(h.srv)
	require.Zero(t, own, "idle clients holding a queue buffer of their own")
	require.Positive(t, lent, "servers keeping a buffer for their next client")
	require.LessOrEqual(t, lent, 2)
}
