package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSharedCapQueryWaitTimeout: with max_db_connections (or max_user_connections) 2 and a
// pool that could open 10, five clients start transactions: two get servers and the three
// others give up at query_wait_timeout (1 s) with pgmux's timeout error, well within 2 s,
// instead of queueing for the shared cap without a deadline.
func TestSharedCapQueryWaitTimeout(t *testing.T) {
	for _, limit := range []string{"max_db_connections = 2", "max_user_connections = 2"} {
		t.Run(limit, func(t *testing.T) {
			pg := pgtest.Start(t)
			db := pg.NewDatabase(t, "sharedcap")
			m := startMux(t, pg, bouncer{PoolSize: 10, Extra: []string{limit, "query_wait_timeout = 1"}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const clients = 5
			conns := make([]*pgx.Conn, clients)
			for i := range conns {
				conns[i] = m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
			}
			type outcome struct {
				err  error
				took time.Duration
			}
			out := make(chan outcome, clients)
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					_, err := c.Exec(ctx, "BEGIN")
					if err == nil {
						_, err = c.Exec(ctx, "SELECT 1")
					}
					out <- outcome{err, time.Since(start)}
				}()
			}
			wg.Wait()
			close(out)
			ok, timedOut := 0, 0
			for o := range out {
				if o.err == nil {
					ok++
					continue
				}
				timedOut++
				pe := muxtest.PgError(t, o.err)
				require.Equal(t, "57014", pe.Code, "%v", o.err)
				require.Contains(t, pe.Message, "query_wait_timeout")
				require.Less(t, o.took, 2*time.Second, "a waiter gave up only after %v", o.took)
			}
			require.Equal(t, 2, ok, "two clients get the two servers the cap allows")
			require.Equal(t, clients-2, timedOut)
		})
	}
}
