package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestColdPoolWaitCounted: on a new pool the first server opens while the first client
// logs in (its parameters are shown at login), so its first query finds that server idle.
// PgBouncer counts the login's wait for it in wait_time (activate_client of a waiting
// login: 2.7 ms for one select 1 on a cold pool, measured); pgmux counted nothing (0 with
// the client loop, the few microseconds of the query's own lease without). The pool's
// server login is held in a relay here, so the wait is at least the time it was held.
func TestColdPoolWaitCounted(t *testing.T) {
	pg := pgtest.Start(t)
	for _, loop := range []string{"1", "0"} {
		t.Run("client_loop="+loop, func(t *testing.T) {
			release := make(chan struct{})
			port, _ := pg.Relay(t, func(n int) <-chan struct{} {
				if n == 1 {
					return release
				}
				return nil
			})
			h := startProxy(t, harnessOpts{extra: map[string]string{"client_loop": loop},
				dbs: map[string]string{"cold": fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s", port, pgtest.AppDB)}})
			adm := h.admin(t)

			connected := make(chan error, 1)
			go func() {
				c, err := h.tryConnect("app", "cold", false)
				if err == nil {
					_, err = c.Exec(t.Context(), "select 1")
					_ = c.Close(t.Context())
				}
				connected <- err
			}()
			require.Eventually(t, func() bool {
				_, rows := show(t, adm, "SHOW POOLS")
				p := rowWhere(rows, "database", "cold")
				return p != nil && num(t, p, "cl_waiting") == 1
			}, 10*time.Second, 5*time.Millisecond, "the login waits for the pool's first server")
			held := time.Now()
			time.Sleep(20 * time.Millisecond)
			_, rows := show(t, adm, "SHOW POOLS")
			p := rowWhere(rows, "database", "cold")
			require.Positive(t, num(t, p, "maxwait")*1e6+num(t, p, "maxwait_us"), "SHOW POOLS shows the wait")
			close(release)
			heldFor := time.Since(held)
			require.NoError(t, <-connected)

			_, rows = show(t, adm, "SHOW STATS")
			st := rowWhere(rows, "database", "cold")
			require.Equal(t, int64(1), num(t, st, "total_server_assignment_count"), "the select found the server idle")
			require.GreaterOrEqual(t, num(t, st, "total_wait_time"), heldFor.Microseconds(),
				"the login's wait for the pool's first server counts")
			require.GreaterOrEqual(t, num(t, st, "avg_wait_time"), heldFor.Microseconds())
		})
	}
}
