package proxy_test

import (
	"context"
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

// TestSuspendHoldOutlivesLease: SUSPEND holds a message of a server (a notification for
// its session-mode client) on the server's reader; meanwhile the client's lease ends (a
// KILL_CLIENT, or the client leaving) and, after RESUME, the server goes to the next
// client before the reader goes on. The held message was the first client's: it must not
// reach the next one, and the next one's server must be left to it. Before the reader
// looked at the lease again after the hold, the KILL_CLIENT case closed the server and
// ended the next client's lease of it (the kill's Discard, meant for the first one's):
// its query was never answered. A hook holds the reader between the hold's end and its
// next step until the next client has the server, the order a RESUME right after the
// kill may take.
func TestSuspendHoldOutlivesLease(t *testing.T) {
	for _, end := range []string{"kill", "leave"} {
		t.Run(end, func(t *testing.T) {
			h := startProxy(t, harnessOpts{mode: "session", extra: map[string]string{
				"default_pool_size": "1", "server_reset_query": "", "listen_mode": "pin", "suspend_timeout": "0"}})
			held, over := make(chan struct{}, 1), make(chan struct{}, 1)
			goOn := make(chan struct{})
			var once sync.Once
			proxy.SetTestHookHold(func(done bool) {
				if !done {
					select {
					case held <- struct{}{}:
					default:
					}
					return
				}
				select {
				case over <- struct{}{}:
				default:
				}
				<-goOn
			})
			t.Cleanup(func() {
				proxy.SetTestHookHold(nil)
				once.Do(func() { close(goOn) })
			})
			ctx := context.Background()
			wait := func(ch chan struct{}, what string) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatal(what)
				}
			}

			first := h.connect(t, "app", "app", true)
			var firstPID uint32
			require.NoError(t, first.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&firstPID))
			execSQL(t, first, "LISTEN lease_end")
			adm := h.admin(t)
			execSQL(t, adm, "SUSPEND")
			direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
			_, err := direct.Exec(ctx, "NOTIFY lease_end, 'for the first client'")
			require.NoError(t, err)
			wait(held, "SUSPEND did not hold the notification")

			if end == "kill" {
				_, rows := show(t, adm, "SHOW CLIENTS")
				execSQL(t, adm, fmt.Sprintf("KILL_CLIENT %d", num(t, rowWhere(rows, "database", "app"), "id")))
			} else {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				_ = first.Close(cctx)
				cancel()
			}
			wait(over, "the hold did not end once the client was gone")
			poolRow := func() map[string]any {
				_, rows := show(t, adm, "SHOW POOLS")
				return rowWhere(rows, "database", "app")
			}
			require.Eventually(t, func() bool { return num(t, poolRow(), "sv_idle") == 1 }, 10*time.Second, 10*time.Millisecond,
				"the first client's server is not back in the pool")
			execSQL(t, adm, "RESUME")

			// The next client, whose request leases that server.
			cc, err := pgx.ParseConfig(h.url("app", "app"))
			require.NoError(t, err)
			var notes atomic.Int32
			cc.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) { notes.Add(1) }
			next, err := pgx.ConnectConfig(ctx, cc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = next.Close(context.Background()) })
			type answer struct {
				pid uint32
				err error
			}
			answered := make(chan answer, 1)
			go func() {
				qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var a answer
				a.err = next.QueryRow(qctx, "SELECT pg_backend_pid()").Scan(&a.pid)
				answered <- a
			}()
			require.Eventually(t, func() bool { return num(t, poolRow(), "sv_active") == 1 }, 10*time.Second, 10*time.Millisecond,
				"the next client did not lease the server")
			once.Do(func() { close(goOn) })

			a := <-answered
			require.NoError(t, a.err, "the next client's query, on the server the first one left")
			require.Equal(t, firstPID, a.pid, "the next client has the first one's server")
			execSQL(t, next, "SELECT 1")
			require.Zero(t, notes.Load(), "the next client got the first one's notification")
		})
	}
}
