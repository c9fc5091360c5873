package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy"
)

// requireCode checks that err is a PostgreSQL error with SQLSTATE code.
func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want SQLSTATE %s, got %T: %v", code, err, err)
	require.Equal(t, code, pe.Code, "%v", pe)
}

// stopAsync runs Stop on its own goroutine and returns its result channel.
func stopAsync(h *harness, ctx context.Context, mode proxy.ShutdownMode) <-chan error {
	done := make(chan error, 1)
	go func() { done <- h.srv.Stop(ctx, mode) }()
	return done
}

func run(t *testing.T, conn *pgx.Conn, sql string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, sql)
	return err
}

// notDone fails if done already has a result.
func notDone(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Stop returned (%v) %s", err, why)
	case <-time.After(300 * time.Millisecond):
	}
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
		return nil
	}
}

// TestStopWaitForServers: the safe shutdown (SIGINT) tells an idle client 57P01 at once,
// lets a transaction in flight finish, closes its client after COMMIT, then returns.
func TestStopWaitForServers(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	busy := h.connect(t, "app", "app", false)
	idle := h.connect(t, "app", "app", false)
	require.NoError(t, run(t, idle, "SELECT 1"))
	require.NoError(t, run(t, busy, "BEGIN"))
	require.NoError(t, run(t, busy, "SELECT 1"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := stopAsync(h, ctx, proxy.ShutdownWaitForServers)
	requireCode(t, run(t, idle, "SELECT 1"), "57P01")
	_, err := h.tryConnect("app", "app", false)
	require.Error(t, err, "a new client is refused")
	notDone(t, done, "while a transaction was open")

	require.NoError(t, run(t, busy, "SELECT 2"), "the transaction goes on")
	require.NoError(t, run(t, busy, "COMMIT"))
	require.NoError(t, result(t, done))
	requireCode(t, run(t, busy, "SELECT 1"), "57P01")
}

// TestStopWaitForClients: the super safe shutdown (SIGTERM) refuses new clients but
// serves connected ones, transactions and new ones alike, until they leave.
func TestStopWaitForClients(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	a := h.connect(t, "app", "app", false)
	b := h.connect(t, "app", "app", false)
	require.NoError(t, run(t, b, "BEGIN"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := stopAsync(h, ctx, proxy.ShutdownWaitForClients)
	notDone(t, done, "with clients connected")
	_, err := h.tryConnect("app", "app", false)
	require.Error(t, err, "a new client is refused")
	require.NoError(t, run(t, a, "SELECT 1"), "an idle client keeps working")
	require.NoError(t, run(t, b, "SELECT 1"))
	require.NoError(t, run(t, b, "COMMIT"))
	require.NoError(t, run(t, b, "SELECT 2"), "and may start another transaction")
	require.NoError(t, a.Close(context.Background()))
	notDone(t, done, "with a client connected")
	require.NoError(t, b.Close(context.Background()))
	require.NoError(t, result(t, done))
}

// TestStopCutOff: a graceful shutdown whose context ends (a second signal, or
// shutdown_timeout) cuts the clients left, each with FATAL 57P01, and says how many.
func TestStopCutOff(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	inTx := h.connect(t, "app", "app", false)
	running := h.connect(t, "app", "app", false)
	require.NoError(t, run(t, inTx, "BEGIN"))
	slow := make(chan error, 1)
	go func() { slow <- run(t, running, "SELECT pg_sleep(30)") }()
	time.Sleep(200 * time.Millisecond) // the sleep reaches the server

	ctx, cancel := context.WithCancel(context.Background())
	done := stopAsync(h, ctx, proxy.ShutdownWaitForClients)
	notDone(t, done, "before the context ended")
	cancel()
	err := result(t, done)
	require.ErrorContains(t, err, "2 clients cut off")
	requireCode(t, run(t, inTx, "SELECT 1"), "57P01")
	select {
	case err := <-slow:
		requireCode(t, err, "57P01")
	case <-time.After(5 * time.Second):
		t.Fatal("the running query was not cut")
	}
}

// TestCloseTellsClients: an immediate shutdown (SIGQUIT, SHUTDOWN) sends FATAL 57P01 to
// every client, the one in a transaction too.
func TestCloseTellsClients(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	idle := h.connect(t, "app", "app", false)
	inTx := h.connect(t, "app", "app", false)
	require.NoError(t, run(t, idle, "SELECT 1"))
	require.NoError(t, run(t, inTx, "BEGIN"))
	require.ErrorContains(t, h.srv.Close(), "2 clients cut off")
	requireCode(t, run(t, idle, "SELECT 1"), "57P01")
	requireCode(t, run(t, inTx, "SELECT 1"), "57P01")
}
