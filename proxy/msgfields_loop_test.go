//go:build linux

package proxy_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy"
)

// TestLoopSplitsParseAndBindOnce: on the client loop, a Parse's statement name and query
// text and a Bind's portal and statement name are found once per message (msgFields),
// though the loop's look (loopable), dispatch's (deferLocal, stickyNeed) and the rewrite
// each read them: unnamed Parse/Bind requests as pgbench -M extended sends them, and a
// named statement's Bind. Each was split three times before. The answers are the rows.
func TestLoopSplitsParseAndBindOnce(t *testing.T) {
	var splits atomic.Int64
	proxy.SetSplitHook(func() { splits.Add(1) })
	t.Cleanup(func() { proxy.SetSplitHook(nil) })
	h := startProxy(t, harnessOpts{extra: map[string]string{"client_loop": "1", "default_pool_size": "1"}})
	c := dialLoopClient(t, h.port)

	unnamed := func(i int) {
		c.fe.Send(&pgproto3.Parse{Query: "SELECT $1::int + 1"})
		c.fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(strconv.Itoa(i))}})
		c.fe.Send(&pgproto3.Describe{ObjectType: 'P'})
		c.fe.Send(&pgproto3.Execute{})
		c.fe.Send(&pgproto3.Sync{})
		require.NoError(t, c.fe.Flush())
		require.Equal(t, []string{strconv.Itoa(i + 1)}, c.until(t, "the unnamed request"))
	}
	named := func(i int) {
		c.fe.Send(&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte(strconv.Itoa(i))}})
		c.fe.Send(&pgproto3.Execute{})
		c.fe.Send(&pgproto3.Sync{})
		require.NoError(t, c.fe.Flush())
		require.Equal(t, []string{strconv.Itoa(i * 2)}, c.until(t, "the named statement's request"))
	}
	unnamed(0) // the first request: the client's first on the loop
	c.fe.Send(&pgproto3.Parse{Name: "s1", Query: "SELECT $1::int * 2"})
	c.fe.Send(&pgproto3.Sync{})
	require.NoError(t, c.fe.Flush())
	c.until(t, "the named Parse")
	named(0) // its first Bind checks the Parse pgmux answered (probeDeferred)

	const n = 20
	splits.Store(0)
	for i := range n {
		unnamed(i)
	}
	require.Equal(t, int64(2*n), splits.Load(), "one split for each Parse and each Bind")
	splits.Store(0)
	for i := range n {
		named(i)
	}
	require.Equal(t, int64(n), splits.Load(), "one split for each Bind")
}
