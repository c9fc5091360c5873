//go:build linux

package proxy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestLoopAcceptsItsClients: while logins run on the client loops, the listener is lent
// to the first loop, which accepts each client itself and starts its login there (no
// accept goroutine's wake-up, post and second accept4 a client). A reload that turns
// client_loop off has the loop give the listener back after one more client, whose
// login runs on a goroutine as the ones after it; turned on again, the loop accepts again.
// A safe shutdown closes the TCP listener at once: a client that connects then is
// refused, not accepted by the loop, while the clients connected finish.
func TestLoopAcceptsItsClients(t *testing.T) {
	if os.Getenv("PGMUX_CLIENT_LOOP") == "0" {
		t.Skip("the listener is never lent with client_loop off")
	}
	h := startProxy(t, harnessOpts{})
	query := func(c *pgx.Conn) {
		t.Helper()
		var n int
		require.NoError(t, c.QueryRow(context.Background(), "SELECT 7").Scan(&n))
		require.Equal(t, 7, n)
	}
	logins := func(n int) {
		t.Helper()
		for range n {
			c, err := h.tryConnect(pgtest.AppUser, "app", true)
			require.NoError(t, err)
			query(c)
			require.NoError(t, c.Close(context.Background()))
		}
	}
	warm := h.connect(t, pgtest.AppUser, "app", true)
	query(warm)
	reload := func(on string) {
		t.Helper()
		next := h.srv.Config().Clone()
		require.NoError(t, config.Set(next, "client_loop", on))
		require.NoError(t, h.srv.Reload(next, nil))
	}

	accepts, started := proxy.LoopAccepts(), proxy.LoopLogins(h.srv)
	logins(20)
	require.EqualValues(t, 20, proxy.LoopAccepts()-accepts, "clients accepted on the loop")
	require.EqualValues(t, 20, proxy.LoopLogins(h.srv)-started, "logins on the loops")

	reload("0")
	accepts, started = proxy.LoopAccepts(), proxy.LoopLogins(h.srv)
	logins(5)
	require.LessOrEqual(t, proxy.LoopAccepts()-accepts, uint64(1), "accepted on the loop after client_loop = 0")
	require.Zero(t, proxy.LoopLogins(h.srv)-started, "logins on the loops after client_loop = 0")

	reload("1")
	logins(1) // the goroutine accepts it, and lends the listener again
	accepts = proxy.LoopAccepts()
	logins(5)
	require.EqualValues(t, 5, proxy.LoopAccepts()-accepts, "accepted on the loop again")

	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Stop(context.Background(), proxy.ShutdownWaitForClients) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port))
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}, 5*time.Second, 10*time.Millisecond, "connections refused once the shutdown began")
	query(warm) // a connected client finishes its work
	require.NoError(t, warm.Close(context.Background()))
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return after the last client left")
	}
}
