package e2e

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// The signals, as PgBouncer 1.23+: SIGINT safe shutdown, SIGTERM super safe, a second
// one or SIGQUIT immediate, SIGUSR1/SIGUSR2 pause and resume. Each test runs the pgmux
// binary and signals it.

// inFlight opens a transaction and starts a query of secs seconds in it; the returned
// channel gets the query's result.
func inFlight(t *testing.T, m *binMux, secs string) (*pgx.Conn, <-chan error) {
	t.Helper()
	conn := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	ctx := context.Background()
	_, err := conn.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := conn.Exec(qctx, "SELECT pg_sleep("+secs+")")
		res <- err
	}()
	time.Sleep(300 * time.Millisecond) // the query is running on the server
	return conn, res
}

func execErr(conn *pgx.Conn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, sql)
	return err
}

func requireSQLState(t *testing.T, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pe.Code, "%v", pe)
}

// requireCut waits for the query in flight to fail with FATAL 57P01.
func requireCut(t *testing.T, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		requireSQLState(t, err, "57P01")
	case <-time.After(5 * time.Second):
		t.Fatal("the query in flight was not cut")
	}
}

// running fails if the process has exited.
func (m *binMux) running(t *testing.T, why string) {
	t.Helper()
	select {
	case <-m.exited:
		t.Fatalf("pgmux exited %s (%v); output:\n%s", why, m.err, m.out)
	case <-time.After(300 * time.Millisecond):
	}
}

// exits waits for the process to exit with status 0 and checks its last log line.
func (m *binMux) exits(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-m.exited:
		require.NoError(t, m.err, "exit status; output:\n%s", m.out)
		require.Contains(t, m.out.String(), `"msg":"pgmux exiting"`)
	case <-time.After(within):
		t.Fatalf("pgmux did not exit within %v; output:\n%s", within, m.out)
	}
}

func (m *binMux) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, m.cmd.Process.Signal(sig))
}

// TestSignalSIGINT: the safe shutdown lets the transaction in flight finish, refuses new
// clients, tells an idle client 57P01, closes the busy one after COMMIT, then exits.
func TestSignalSIGINT(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	idle := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, execErr(idle, "SELECT 1"))
	busy, res := inFlight(t, m, "1")

	m.signal(t, syscall.SIGINT)
	m.running(t, "with a transaction in flight")
	requireSQLState(t, execErr(idle, "SELECT 1"), "57P01")
	require.NoError(t, <-res, "the query in flight completes")
	require.NoError(t, execErr(busy, "SELECT 2"), "the transaction goes on")
	require.NoError(t, execErr(busy, "COMMIT"))
	m.exits(t, 5*time.Second)
	requireSQLState(t, execErr(busy, "SELECT 1"), "57P01")
}

// TestSignalSIGTERM: the super safe shutdown serves connected clients, a new transaction
// after the one in flight too, and exits once the last client has left.
func TestSignalSIGTERM(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	busy, res := inFlight(t, m, "1")

	m.signal(t, syscall.SIGTERM)
	m.running(t, "with a transaction in flight")
	require.NoError(t, <-res, "the query in flight completes")
	require.NoError(t, execErr(busy, "COMMIT"))
	require.NoError(t, execErr(busy, "SELECT 1"), "a connected client is still served")
	_, err := pgx.Connect(context.Background(), m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.Error(t, err, "a new client is refused")
	m.running(t, "with a client connected")
	require.NoError(t, busy.Close(context.Background()))
	m.exits(t, 5*time.Second)
}

// TestSignalSIGQUIT: the immediate shutdown cuts the transaction in flight with 57P01.
func TestSignalSIGQUIT(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	_, res := inFlight(t, m, "20")
	m.signal(t, syscall.SIGQUIT)
	requireCut(t, res)
	m.exits(t, 5*time.Second)
}

// TestSignalSecondSIGTERM: a second SIGTERM during the shutdown is immediate.
func TestSignalSecondSIGTERM(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	_, res := inFlight(t, m, "20")
	m.signal(t, syscall.SIGTERM)
	m.running(t, "after one SIGTERM")
	start := time.Now()
	m.signal(t, syscall.SIGTERM)
	requireCut(t, res)
	m.exits(t, 5*time.Second)
	require.Less(t, time.Since(start), 3*time.Second)
}

// TestSignalPauseResume: SIGUSR1 holds new transactions as PAUSE does, SIGUSR2 lets them go.
func TestSignalPauseResume(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	conn := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, execErr(conn, "SELECT 1"))
	m.signal(t, syscall.SIGUSR1)
	require.Eventually(t, func() bool { return strings.Contains(m.out.String(), "SIGUSR1: paused") }, 5*time.Second, 20*time.Millisecond)
	res := make(chan error, 1)
	go func() { res <- execErr(conn, "SELECT 1") }()
	select {
	case err := <-res:
		t.Fatalf("a query ran while paused: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	m.signal(t, syscall.SIGUSR2)
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the query did not run after SIGUSR2")
	}
	require.NoError(t, m.stop(t, syscall.SIGINT, 10*time.Second))
}

// TestSignalPauseResumeBackToBack: a SIGUSR2 handled right after a SIGUSR1 resumes. The
// pause's hold used to be set on a goroutine the SIGUSR1 handler started, so the SIGUSR2
// behind it could find nothing to resume ("pooler is not paused/suspended") and the late
// hold then paused pgmux for good. Now SIGUSR1 sets the hold before the next signal is
// handled, and only the wait for the servers runs aside.
func TestSignalPauseResumeBackToBack(t *testing.T) {
	pg := pgtest.Start(t)
	m := startBinary(t, pg, bouncer{})
	conn := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, execErr(conn, "SELECT 1"))
	const usr1, usr2 = `"msg":"SIGUSR1: paus`, `"msg":"SIGUSR2: resume`
	for i := range 10 {
		from := len(m.out.String())
		m.signal(t, syscall.SIGUSR1)
		m.signal(t, syscall.SIGUSR2)
		var log string
		require.Eventually(t, func() bool {
			log = m.out.String()[from:]
			return strings.Contains(log, usr1) && strings.Contains(log, usr2)
		}, 5*time.Second, 5*time.Millisecond, "round %d: both signals handled", i)
		if strings.Index(log, usr2) < strings.Index(log, usr1) {
			// The kernel may hand two signals sent back to back to two threads, and the
			// second may then come first: pgmux is paused, as it should be after
			// SIGUSR2 then SIGUSR1. Resume it.
			require.Contains(t, log, "pooler is not paused", "round %d", i)
			m.signal(t, syscall.SIGUSR2)
			require.Eventually(t, func() bool { return strings.Contains(m.out.String()[from:], "SIGUSR2: resumed") },
				5*time.Second, 5*time.Millisecond, "round %d: SIGUSR2 resumes", i)
		} else {
			require.NotContains(t, log, "not paused", "round %d: SIGUSR1 was handled first, yet SIGUSR2 found nothing to resume", i)
		}
		require.NoError(t, execErr(conn, "SELECT 1"), "round %d: a query after SIGUSR1 and SIGUSR2", i)
	}
	require.NoError(t, m.stop(t, syscall.SIGINT, 10*time.Second))
}
