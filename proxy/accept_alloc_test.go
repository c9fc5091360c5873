//go:build linux && !race

package proxy

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAcceptFDAllocatesNothing: taking a waiting client off a raw listener (a login on a
// client loop begins so) allocates nothing; a closure with its results captured made two
// heap allocations of every accept. Not in race builds, whose runtime allocates for its
// own bookkeeping.
func TestAcceptFDAllocatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rl := rawAccepting(ln).(rawListener)
	defer rl.Close()
	const runs = 50
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for range runs + 1 { // AllocsPerRun's warm-up call takes one too
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		clients = append(clients, c)
	}
	allocs := testing.AllocsPerRun(runs, func() {
		fd, err := rl.acceptFD()
		if err != nil {
			t.Fatal(err)
		}
		_ = syscall.Close(fd)
	})
	require.Zero(t, allocs)
}
