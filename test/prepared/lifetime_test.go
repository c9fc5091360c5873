package prepared

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestServerLifetime runs 20 clients' prepared statements for a few seconds while
// server_lifetime (0.2s) keeps replacing the server connections under them.
func TestServerLifetime(t *testing.T) {
	cfg := config.Default()
	require.NoError(t, config.Set(cfg, "server_lifetime", "0.2"))
	require.Equal(t, 200*time.Millisecond, cfg.ServerLifetime)

	inModes(t, setup{poolSize: 4, extra: []string{"server_lifetime = 0.2"}}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "life")
		until := time.Now().Add(3 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		var pids sync.Map
		for id := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mode := pgxModes[id%len(pgxModes)].mode
				conn, err := m.tryConnect(db, mode)
				if err != nil {
					errs <- err
					return
				}
				defer closeConn(conn)
				for i := 0; i < 100000 && time.Now().Before(until); i++ {
					c, cancel := context.WithTimeout(context.Background(), opTimeout)
					var pid, got int
					err := conn.QueryRow(c, fmt.Sprintf("SELECT pg_backend_pid(), $1::int + %d", i%5), id).Scan(&pid, &got)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("client %d: %w", id, err)
						return
					}
					if got != id+i%5 {
						errs <- fmt.Errorf("client %d: got %d, want %d", id, got, id+i%5)
						return
					}
					pids.Store(pid, true)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		n := 0
		pids.Range(func(any, any) bool { n++; return true })
		require.Greater(t, n, 8, "server connections were replaced (server_lifetime)")
	})
}

var _ = pgx.QueryExecModeCacheStatement
