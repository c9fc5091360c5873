package main

import (
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStopDoesNotLogAdaptiveProcsOff: stopping pgmux (or failing to start it) stops the
// adaptive_procs governor without logging "adaptive_procs off", which is for a reload
// that turns the setting off.
func TestStopDoesNotLogAdaptiveProcsOff(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("adaptive_procs needs 2 processors or more")
	}
	upstream := "postgres://app:s3cret@127.0.0.1:1/app"

	// A normal start and stop.
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	args := []string{"--upstream", upstream, "--metrics-addr", "", "--listen", "127.0.0.1:" + strconv.Itoa(freePort(t))}
	go func() { done <- run(ctx, args, noEnv, io.Discard, &logs) }()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "pgmux listening") }, 10*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	require.Contains(t, logs.String(), "pgmux exiting")
	require.NotContains(t, logs.String(), "adaptive_procs off")

	// A start that fails: the address is taken.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var logs2 syncBuffer
	err = run(context.Background(), []string{"--upstream", upstream, "--metrics-addr", "", "--listen", ln.Addr().String()}, noEnv, io.Discard, &logs2)
	require.ErrorContains(t, err, "address already in use")
	require.NotContains(t, logs2.String(), "adaptive_procs off")
}
