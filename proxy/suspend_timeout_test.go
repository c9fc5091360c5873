package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/proxy"
)

// TestSuspendTimeout: SUSPEND waits at most suspend_timeout for the answers on their way
// to clients, as PgBouncer's does: a client that stopped reading in the middle of a long
// result is dropped with its server once suspend_timeout has passed, and SUSPEND then
// completes; an idle client is kept and works after RESUME. A SET (as a RELOAD) of
// suspend_timeout during a SUSPEND applies to it. pgmux ignored suspend_timeout: SUSPEND
// waited for that client's server forever.
func TestSuspendTimeout(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"suspend_timeout": "1"}})
	adm := h.admin(t)
	idle := h.connect(t, "app", "app", false)
	execSQL(t, idle, "SELECT 1")

	// suspend runs SUSPEND on conn and sends its error, and how long it took, to the
	// channel it returns.
	type result struct {
		err  error
		took time.Duration
	}
	suspend := func(conn *pgx.Conn) <-chan result {
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := conn.Exec(ctx, "SUSPEND")
			done <- result{err, time.Since(start)}
		}()
		return done
	}
	checkDropped := func(stalled *streamClient, r result) {
		t.Helper()
		require.NoError(t, r.err, "SUSPEND")
		require.NoError(t, stalled.endsWithFatalOrClose(), "the client that does not read is dropped")
		_, rows := show(t, adm, "SHOW POOLS")
		require.Zero(t, num(t, rowWhere(rows, "database", "app"), "sv_active"), "SHOW POOLS: %v", rows)
		_, rows = show(t, adm, "SHOW STATE")
		require.Equal(t, "yes", rowWhere(rows, "key", "suspended")["value"])
		_, err := adm.Exec(context.Background(), "RESUME")
		require.NoError(t, err)
		execSQL(t, idle, "SELECT 1")
	}

	// suspend_timeout from the configuration.
	stalled := dialStream(t, h.port, "app")
	stalled.startStalled(t)
	awaitStalled(t, h.srv, "app")
	var r result
	select {
	case r = <-suspend(adm):
	case <-time.After(15 * time.Second):
		t.Fatal("SUSPEND still waits for a client that does not read, 15 s on (suspend_timeout = 1)")
	}
	t.Logf("SUSPEND took %v", r.took)
	require.GreaterOrEqual(t, r.took, time.Second, "SUSPEND dropped the client before suspend_timeout")
	checkDropped(stalled, r)

	// suspend_timeout = 0 waits for the client; a SET of 1 during the wait ends it.
	_, err := adm.Exec(context.Background(), "SET suspend_timeout = 0")
	require.NoError(t, err)
	stalled = dialStream(t, h.port, "app")
	stalled.startStalled(t)
	awaitStalled(t, h.srv, "app")
	adm2 := h.admin(t)
	done := suspend(adm2)
	select {
	case r = <-done:
		t.Fatalf("SUSPEND returned (%v) with suspend_timeout = 0 and a client that does not read", r.err)
	case <-time.After(1500 * time.Millisecond):
	}
	_, err = adm.Exec(context.Background(), "SET suspend_timeout = 1")
	require.NoError(t, err)
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("SUSPEND still waits, 15 s after SET suspend_timeout = 1")
	}
	checkDropped(stalled, r)
}

// TestSuspendTimeoutFatal: a client SUSPEND drops at suspend_timeout because its answer
// was not flushed, and that reads again before it is closed, gets PgBouncer's FATAL for a
// socket it could not suspend: SQLSTATE 08P01, message "suspend_timeout" (janitor.c
// suspend_socket, disconnect_client's default code). pgmux sent 57P01 with a message of
// its own. killWait is raised so that the client's late read comes before the untold
// close.
func TestSuspendTimeoutFatal(t *testing.T) {
	defer proxy.SetKillWaitForTest(10*time.Second, 20*time.Second)()
	h := startProxy(t, harnessOpts{extra: map[string]string{"suspend_timeout": "1"}})
	adm := h.admin(t)
	stalled := dialStream(t, h.port, "app")
	stalled.startStalled(t)
	awaitStalled(t, h.srv, "app")
	done := suspendAsync(t, h)
	time.Sleep(2500 * time.Millisecond) // past suspend_timeout: the drop has begun
	require.NoError(t, stalled.nc.SetReadDeadline(time.Now().Add(30*time.Second)))
	var fatal *pgproto3.ErrorResponse
	for fatal == nil {
		typ, body, err := stalled.next()
		require.NoError(t, err, "the stream ended before a FATAL")
		if typ == 'E' {
			fatal = &pgproto3.ErrorResponse{}
			require.NoError(t, fatal.Decode(body))
		}
	}
	require.Equal(t, "FATAL", fatal.Severity)
	require.Equal(t, "08P01", fatal.Code, fatal.Message)
	require.Equal(t, "suspend_timeout", fatal.Message)
	require.NoError(t, <-done, "SUSPEND")
	_, err := adm.Exec(context.Background(), "RESUME")
	require.NoError(t, err)
}
