package sticky

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestResetRaceStress: clients with startup values SET and RESET them over and over
// while many others churn the same few servers (some leaving in the middle of a
// query), and every value each one reads must be its own. It catches a server whose
// recorded settings disagree with what it has: recorded before the hidden reset or
// read-back was answered, kept after it failed, or a server given back to the pool
// before its read-back.
func TestResetRaceStress(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, directSize: 1})
	db := m.pg.NewDatabase(t, "resetrace")
	ctx, cancel := context.WithCancel(context.Background())
	var churn sync.WaitGroup
	defer func() { cancel(); churn.Wait() }()
	for i := 0; i < 12; i++ {
		churn.Add(1)
		go func(i int) {
			defer churn.Done()
			for ctx.Err() == nil {
				conn, err := muxtest.TryConnect(m.url(db), pgx.QueryExecModeCacheStatement, opTimeout)
				if err != nil {
					continue
				}
				for j := 0; j < 20 && ctx.Err() == nil; j++ {
					if i%3 == 0 && j == 10 {
						// Leave in the middle of a query: pgx closes the socket at the deadline.
						qctx, qcancel := context.WithTimeout(ctx, time.Millisecond)
						_, _ = conn.Exec(qctx, "SELECT pg_sleep(0.01)")
						qcancel()
						break
					}
					_, _ = conn.Exec(ctx, "SELECT 1")
				}
				muxtest.CloseConn(conn)
			}
		}(i)
	}
	params := map[string]string{
		"options":  "-c DateStyle=Postgres,MDY -c statement_timeout=7s",
		"TimeZone": "Asia/Tokyo",
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			conn, err := muxtest.TryConnect(withParams(t, m.url(db), params), pgx.QueryExecModeCacheStatement, opTimeout)
			if err != nil {
				errs <- err
				return
			}
			defer muxtest.CloseConn(conn)
			get := func(name string) string {
				var v string
				if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_setting($1)", name).Scan(&v); err != nil {
					return "error: " + err.Error()
				}
				return v
			}
			exec := func(sql string) error {
				if sql == "set_config" {
					// The extended protocol: the read-back goes out from the server's
					// reader at ReadyForQuery, racing the client's next request.
					var v string
					return conn.QueryRow(ctx, "SELECT pg_catalog.set_config('DateStyle', $1, false)", "SQL").Scan(&v)
				}
				_, err := conn.Exec(ctx, sql)
				return err
			}
			for i := 0; i < 10; i++ {
				steps := []struct{ sql, name, want string }{
					{"SET DateStyle = ISO", "DateStyle", "ISO, MDY"},
					{"RESET DateStyle", "DateStyle", "Postgres, MDY"},
					{"set_config", "DateStyle", "SQL, MDY"},
					{"RESET DateStyle", "DateStyle", "Postgres, MDY"},
					{"SET TimeZone = 'UTC'", "TimeZone", "UTC"},
					{"RESET ALL", "TimeZone", "Asia/Tokyo"},
					{"SET statement_timeout = '1min'", "statement_timeout", "1min"},
					{"RESET statement_timeout", "statement_timeout", "7s"},
				}
				for _, s := range steps {
					if err := exec(s.sql); err != nil {
						errs <- fmt.Errorf("client %d round %d: %s: %w", k, i, s.sql, err)
						return
					}
					for r := 0; r < 2; r++ {
						if got := get(s.name); got != s.want {
							errs <- fmt.Errorf("client %d round %d read %d: %s after %q: got %q, want %q",
								k, i, r, s.name, s.sql, got, s.want)
							return
						}
					}
				}
				if got := get("DateStyle"); got != "Postgres, MDY" {
					errs <- fmt.Errorf("client %d round %d: DateStyle %q at the round's end", k, i, got)
					return
				}
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
