package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy"
)

// readyzLimit bounds the wait for a /readyz answer: its own limit is 2 s (readyTimeout),
// and what it checks can hang for server_connect_timeout (15 s).
const readyzLimit = 5 * time.Second

// readyzWithin asks for /readyz and fails the test when no answer comes within readyzLimit.
func readyzWithin(t *testing.T, h *harness) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: readyzLimit}
	resp, err := c.Get("http://" + h.srv.MetricsAddr().String() + "/readyz")
	require.NoError(t, err, "/readyz must answer within its limit")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	t.Logf("/readyz: %d %s", resp.StatusCode, b)
	return resp.StatusCode, string(b)
}

// refusedPort returns a loopback port that refuses connections until the test ends: a
// socket is bound to it and does not listen, so no other listener can take it. A port
// freed by closing a listener could be taken by any listener on the machine meanwhile:
// one that accepted and never answered made a CI run of TestReadyzUnreachable wait for
// server_connect_timeout (15 s), its /readyz answered by nothing.
func refusedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	_, err = net.Listen("tcp", addr)
	require.Error(t, err, "no listener can take a bound port")
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	return port
}

// silentServer listens on a loopback port and takes every connection without a word, as
// a hung server's kernel completes connections nothing will answer; ended gets one value
// per connection pgmux closed. stop closes the listener and the connections still open,
// and waits for its goroutines; the test's cleanup calls it too.
func silentServer(t *testing.T) (port int, ended <-chan struct{}, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := make(chan struct{}, 64)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return // the listener closed
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, nc) // until pgmux, or stop, closes it
				select {
				case closed <- struct{}{}:
				default:
				}
			}()
		}
	}()
	stop = sync.OnceFunc(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	t.Cleanup(stop)
	return ln.Addr().(*net.TCPAddr).Port, closed, stop
}

// TestReadyzSilentServer: /readyz answers 503 within its limit, with the database and
// the reason, when a configured database's server takes connections and never answers
// them. With a forced user (user=), the check logs in through a pool made for it; its
// login waited for server_connect_timeout (15 s), and /readyz gave no answer at all. The
// check's connection is closed within the check's own limit, not left to that timeout.
func TestReadyzSilentServer(t *testing.T) {
	port, ended, stop := silentServer(t)
	h := startProxy(t, harnessOpts{dbs: map[string]string{"silent": "host=127.0.0.1 port=" + strconv.Itoa(port) + " user=app"}})
	t.Cleanup(stop) // before the proxy stops: nothing of it waits for the server then

	code, body := readyzWithin(t, h)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	// The check's login ends with the check: the reason is its time limit, as the pool's
	// wait for the login (no server login within) or the login's own read says it.
	require.Regexp(t, `not ready: database silent: .*(deadline|timeout)`, body)
	select {
	case <-ended:
	case <-time.After(readyzLimit):
		t.Fatalf("the readiness check's connection to the silent server is still open %v after /readyz answered", readyzLimit)
	}
}

// TestReadyzSilentServerAfterClient: a client gave up waiting for a server that takes
// connections and never answers (the pool's login goes on without it); /readyz then
// logs a new connection in through the client's pool, whose dial waited for
// server_connect_timeout (15 s) past the probe's 2 s limit: no answer at all, as a CI run
// of TestReadyzUnreachable saw once its "closed" port had been taken by another listener.
func TestReadyzSilentServerAfterClient(t *testing.T) {
	port, _, stop := silentServer(t)
	h := startProxy(t, harnessOpts{dbs: map[string]string{"silent": "host=127.0.0.1 port=" + strconv.Itoa(port)}})
	t.Cleanup(stop)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := pgx.Connect(ctx, h.url("app", "silent"))
	require.Error(t, err, "nothing answers the pool's login")

	code, body := readyzWithin(t, h)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "database silent:")
	require.Contains(t, body, "no server login within")
}

// TestReadyzStuckCheck: /readyz answers 503 within its limit even when its check is stuck
// on a lock (here the console's, as a console command holds it): the check runs on its
// own goroutine, and once the lock is free it ends and the next probe is answered in full.
func TestReadyzStuckCheck(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	release := proxy.HoldConsoleForTest(h.srv)
	t.Cleanup(release)

	code, body := readyzWithin(t, h)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "did not finish within")

	release()
	require.Eventually(t, func() bool {
		code, body = readyzWithin(t, h)
		return code == http.StatusOK
	}, 2*readyzLimit, 50*time.Millisecond, "/readyz should be ready again once the lock is free; last answer: %s", body)
}
