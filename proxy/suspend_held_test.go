package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestSuspendKeepsOpenTransactions: SUSPEND returns once nothing is on its way, as
// PgBouncer's does once every socket's buffer is empty, while a client sits inside a
// transaction (transaction mode) or holds its server (session mode): that client is
// suspended as it is, its server kept, and its next request waits for RESUME; after
// RESUME its transaction goes on and commits what it did before and after. pgmux's
// SUSPEND waited for those clients' servers to be released: for the transaction's end,
// for the session-mode client's departure, forever with suspend_timeout = 0.
func TestSuspendKeepsOpenTransactions(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			h := startProxy(t, harnessOpts{mode: mode, extra: map[string]string{"suspend_timeout": "0"}})
			ctx := context.Background()
			direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
			_, err := direct.Exec(ctx, "DROP TABLE IF EXISTS susp; CREATE TABLE susp (n int); GRANT ALL ON susp TO PUBLIC")
			require.NoError(t, err)

			app := h.connect(t, "app", "app", false)
			tx, err := app.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, "INSERT INTO susp VALUES (1)")
			require.NoError(t, err)

			adm := h.admin(t)
			suspended := make(chan error, 1)
			go func() {
				sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				_, err := adm.Exec(sctx, "SUSPEND")
				suspended <- err
			}()
			select {
			case err := <-suspended:
				require.NoError(t, err, "SUSPEND")
			case <-time.After(5 * time.Second):
				t.Fatal("SUSPEND still waits, 5 s on, for a client idle inside its transaction")
			}
			adm2 := h.admin(t)
			_, rows := show(t, adm2, "SHOW STATE")
			require.Equal(t, "yes", rowWhere(rows, "key", "suspended")["value"])

			// The held client's next request waits for RESUME.
			sent := make(chan error, 1)
			go func() {
				qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				_, err := tx.Exec(qctx, "INSERT INTO susp VALUES (2)")
				sent <- err
			}()
			select {
			case err := <-sent:
				t.Fatalf("a suspended client's request ran before RESUME (%v)", err)
			case <-time.After(300 * time.Millisecond):
			}
			_, err = adm2.Exec(ctx, "RESUME")
			require.NoError(t, err)
			select {
			case err := <-sent:
				require.NoError(t, err, "the request held by SUSPEND, after RESUME")
			case <-time.After(10 * time.Second):
				t.Fatal("the held request did not run after RESUME")
			}
			require.NoError(t, tx.Commit(ctx))
			var n, sum int
			require.NoError(t, direct.QueryRow(ctx, "SELECT count(*), coalesce(sum(n), 0) FROM susp").Scan(&n, &sum))
			require.Equal(t, []int{2, 3}, []int{n, sum}, "both rows of the transaction committed")
			execSQL(t, app, "SELECT 1")

			// A later SUSPEND with the same client idle again (no transaction) returns too.
			_, err = adm2.Exec(ctx, "SUSPEND")
			require.NoError(t, err)
			_, err = adm2.Exec(ctx, "RESUME")
			require.NoError(t, err)
			queryWithin(t, app, "SELECT 1", 10*time.Second, "after the second RESUME")
		})
	}
}

// TestSuspendTimeoutClosesLogins: SUSPEND waits for the clients logging in when it
// begins, as PgBouncer's counts its login clients as active, and once suspend_timeout
// has passed closes those still logging in with FATAL 08P01 "suspend_timeout", as
// PgBouncer's janitor closes its login list then; a client that connects after SUSPEND
// began is left to log in (PgBouncer does not accept it meanwhile). pgmux's SUSPEND
// returned at once and kept the client logging in until client_login_timeout.
func TestSuspendTimeoutClosesLogins(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"suspend_timeout": "1"}})
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.port))
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	adm := h.admin(t)
	early := dial()     // connected, and sends nothing: logging in
	for i := 0; ; i++ { // until pgmux has accepted it and its login has begun
		_, rows := show(t, adm, "SHOW LISTS")
		// SHOW LISTS counts a client from its accept; SUSPEND, from the start of its
		// login on the loop a moment later (loggingIn): a client accepted in between is
		// one that connected after SUSPEND began, held until RESUME (the late client).
		if num(t, rowWhere(rows, "list", "login_clients"), "items") >= 1 && proxy.LoginsInFlight(h.srv) >= 1 {
			break
		}
		require.Less(t, i, 1000, "pgmux did not accept the early client")
		time.Sleep(10 * time.Millisecond)
	}

	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := adm.Exec(ctx, "SUSPEND")
		done <- result{err, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond)
	late := dial() // after SUSPEND began

	require.NoError(t, early.SetReadDeadline(time.Now().Add(10*time.Second)))
	e := readFatal(t, early)
	require.Equal(t, "08P01", e.Code, e.Message)
	require.Equal(t, "suspend_timeout", e.Message)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "closed before suspend_timeout")
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SUSPEND still waits after suspend_timeout closed the login")
	}
	require.NoError(t, r.err, "SUSPEND")
	require.GreaterOrEqual(t, r.took, time.Second, "SUSPEND returned while a client was logging in")

	require.NoError(t, late.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	n, err := late.Read(make([]byte, 1))
	require.Zero(t, n)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "the client that connected during SUSPEND is kept: %v", err)
	_, err = late.Write(startupBytes())
	require.NoError(t, err)
	_, err = adm.Exec(context.Background(), "RESUME")
	require.NoError(t, err)
	require.NoError(t, late.SetReadDeadline(time.Now().Add(10*time.Second)))
	var hdr [1]byte
	_, err = io.ReadFull(late, hdr[:])
	require.NoError(t, err)
	require.Equal(t, byte('R'), hdr[0], "the late client logs in after RESUME")
}
