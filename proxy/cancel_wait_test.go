package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestCancelBeforeWaitBegins: a cancel request that comes after pgmux has read a request
// and counted it waiting for a server, but before the pool has its wait (here: the test
// sends it from the moment the wait begins), found nothing to withdraw and was dropped:
// the INSERT then waited for the server another client held and ran once it was
// released ("busy"), or got the idle server at once and ran ("idle"). To its client the
// statement was running, as it is for PostgreSQL once a backend has read it: it is
// answered 57014 "canceling statement due to user request" at once (while the server is
// still held), and the INSERT never runs. The client's next request is served as usual.
func TestCancelBeforeWaitBegins(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "cancelearly")
	pg.ExecDB(t, db, "CREATE TABLE t (id int); GRANT ALL ON t TO PUBLIC")
	count := func() int64 {
		var n int64
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, db).QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
		return n
	}
	var armed atomic.Pointer[sync.Once]
	proxy.SetTestHookWaitBegins(func(name string, cancel func()) {
		if name != "cancelearly" {
			return
		}
		if once := armed.Load(); once != nil {
			once.Do(cancel)
		}
	})
	t.Cleanup(func() { proxy.SetTestHookWaitBegins(nil) })

	for _, loop := range []string{"0", "1"} {
		for _, busy := range []bool{true, false} {
			name := fmt.Sprintf("client_loop=%s/busy=%v", loop, busy)
			t.Run(name, func(t *testing.T) {
				h := startProxy(t, harnessOpts{extra: map[string]string{"client_loop": loop},
					dbs: map[string]string{"cancelearly": fmt.Sprintf("host=%s port=%d dbname=%s pool_size=1", pg.Host, pg.Port, db)}})
				holder := h.connect(t, "app", "cancelearly", false)
				execSQL(t, holder, "SELECT 1") // the pool's one server, idle now
				if busy {
					execSQL(t, holder, "BEGIN")
					execSQL(t, holder, "SELECT 1")
				}
				c := h.connect(t, "app", "cancelearly", false)
				once := &sync.Once{}
				armed.Store(once)
				defer armed.Store(nil)

				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := c.Exec(ctx, "INSERT INTO t VALUES (1)")
				var pe *pgconn.PgError
				require.True(t, errors.As(err, &pe), "the canceled INSERT: %v", err)
				require.Equal(t, "57014", pe.Code)
				require.Equal(t, "canceling statement due to user request", pe.Message)
				canceled := false
				once.Do(func() { canceled = true })
				require.False(t, canceled, "no cancel request was sent")

				if busy {
					execSQL(t, holder, "COMMIT")
				}
				queryWithin(t, c, "SELECT 1", 10*time.Second, "the client's next request")
				require.Zero(t, count(), "the canceled INSERT ran")
			})
		}
	}
}

// TestCancelWhileWaitingForStandby: a read routed to a standby (replica_reads=auto) whose
// one connection another client holds waits for that connection (briefly, then it goes
// to the primary: here the wait is made long). A cancel request for it was dropped: the
// wait was in the standby's pool, where no Withdraw looked, and the read ran, on the
// standby once freed or on the primary after the wait. Now it is answered 57014 at once;
// the client's next read is served as usual.
func TestCancelWhileWaitingForStandby(t *testing.T) {
	t.Cleanup(proxy.SetStandbyBusyWait(30 * time.Second)) // after the proxy's Close
	primary := pgtest.StartPrivate(t)
	standby := primary.StartStandby(t)
	for _, loop := range []string{"0", "1"} {
		t.Run("client_loop="+loop, func(t *testing.T) {
			h := startProxy(t, harnessOpts{extra: map[string]string{"client_loop": loop, "query_wait_timeout": "0"},
				dbs: map[string]string{"cancelreplica": fmt.Sprintf(
					"host=127.0.0.1,127.0.0.1 port=%d,%d dbname=app target_session_attrs=read-write replica_reads=auto pool_size=1",
					standby.Port, primary.Port)}})
			holder := h.connect(t, "app", "cancelreplica", true)
			execSQL(t, holder, "SELECT 1") // the database's first pool: its hosts are watched from now on
			adm := h.admin(t)
			require.Eventually(t, func() bool { // pgmux knows the standby's role and lag: reads can go there
				_, rows := show(t, adm, "SHOW HOSTS")
				for _, r := range rows {
					if fmt.Sprint(r["port"]) == fmt.Sprint(standby.Port) {
						return r["role"] == "standby" && r["replication_lag_ms"] != nil
					}
				}
				return false
			}, 20*time.Second, 20*time.Millisecond, "pgmux did not check the standby")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var tx pgx.Tx
			for i := 0; ; i++ { // a read-only transaction that holds the standby's connection
				require.Less(t, i, 200, "no read-only transaction reached the standby")
				var err error
				tx, err = holder.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
				require.NoError(t, err)
				var onStandby bool
				require.NoError(t, tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&onStandby))
				if onStandby {
					break
				}
				require.NoError(t, tx.Rollback(ctx))
				time.Sleep(20 * time.Millisecond)
			}

			c := h.connect(t, "app", "cancelreplica", true)
			got := make(chan error, 1)
			go func() {
				var onStandby bool
				got <- c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&onStandby)
			}()
			require.Eventually(t, func() bool { return proxy.StandbyWaitingForTest(h.srv, "cancelreplica") == 1 },
				10*time.Second, time.Millisecond, "the read does not wait for the standby")
			require.NoError(t, c.PgConn().CancelRequest(ctx))
			select {
			case err := <-got:
				var pe *pgconn.PgError
				require.True(t, errors.As(err, &pe), "the canceled read: %v", err)
				require.Equal(t, "57014", pe.Code)
				require.Equal(t, "canceling statement due to user request", pe.Message)
			case <-time.After(5 * time.Second):
				t.Fatal("the canceled read still waits for the standby")
			}
			require.Zero(t, proxy.StandbyWaitingForTest(h.srv, "cancelreplica"))
			require.NoError(t, tx.Rollback(ctx))
			queryWithin(t, c, "SELECT 1", 10*time.Second, "the client's next read")
		})
	}
}
