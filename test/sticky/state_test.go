package sticky

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSessionStatePersists: a temp table created in one transaction is there in the
// client's next transactions (pinned), and SET search_path / SET statement_timeout
// persist for the client that set them (carried from server to server, not pinned),
// while 30 other clients sharing a pool of 2 always see the defaults.
func TestSessionStatePersists(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "state")
	direct := m.direct(t, db)
	_, err := direct.Exec(ctxT(t), "CREATE SCHEMA side; GRANT USAGE, CREATE ON SCHEMA side TO PUBLIC")
	require.NoError(t, err)
	var defPath string
	require.NoError(t, direct.QueryRow(ctxT(t), "SHOW search_path").Scan(&defPath))
	adm := m.admin(t)
	ctx := ctxT(t)

	tmp := m.connect(t, db)
	require.NoError(t, pgx.BeginFunc(ctx, tmp, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TEMP TABLE scratch (x int)")
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO scratch VALUES (1)")
		}
		return err
	}))
	require.Equal(t, "temp_object", pinReasonOf(t, adm, db, tmp))

	setter := m.connect(t, db)
	_, err = setter.Exec(ctx, "SET search_path = side, public")
	require.NoError(t, err)
	_, err = setter.Exec(ctx, "SET statement_timeout = '4321ms'")
	require.NoError(t, err)
	require.Equal(t, "", pinReasonOf(t, adm, db, setter))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	const others, rounds = 30, 40
	for i := 0; i < others; i++ {
		c := m.connect(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < rounds; j++ {
				var path, timeout string
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if err := tx.QueryRow(ctx, "SHOW search_path").Scan(&path); err != nil {
						return err
					}
					return tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout)
				})
				if err == nil && (path != defPath || timeout != "0") {
					err = fmt.Errorf("another client's settings leaked: search_path %q, statement_timeout %q", path, timeout)
				}
				if err == nil {
					var n int
					// The temp table is the other client's: not visible here.
					err = c.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't' AND pg_table_is_visible(oid)").Scan(&n)
					if err == nil && n != 0 {
						err = fmt.Errorf("another client's temp table is visible")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for j := 0; j < rounds; j++ {
			err := pgx.BeginFunc(ctx, tmp, func(tx pgx.Tx) error {
				var n int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM scratch").Scan(&n); err != nil {
					return err
				}
				if n != j+1 {
					return fmt.Errorf("scratch has %d rows, want %d", n, j+1)
				}
				_, err := tx.Exec(ctx, "INSERT INTO scratch VALUES ($1)", j)
				return err
			})
			if err != nil {
				errs <- fmt.Errorf("temp table client, round %d: %w", j, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for j := 0; j < rounds; j++ {
			var path, timeout string
			err := pgx.BeginFunc(ctx, setter, func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, "SHOW search_path").Scan(&path); err != nil {
					return err
				}
				return tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout)
			})
			if err == nil && (path != "side, public" || timeout != "4321ms") {
				err = fmt.Errorf("settings lost: search_path %q, statement_timeout %q", path, timeout)
			}
			if err != nil {
				errs <- fmt.Errorf("SET client, round %d: %w", j, err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// The pinned client is still pinned, the others not.
	require.Equal(t, "temp_object", pinReasonOf(t, adm, db, tmp))
	require.Equal(t, "", pinReasonOf(t, adm, db, setter))
	pinned := 0
	for _, reason := range pinReasons(t, adm, db) {
		if reason != "" {
			pinned++
		}
	}
	require.Equal(t, 1, pinned)

	// RESET ALL forgets the settings; DROP TABLE releases the pin.
	_, err = setter.Exec(ctxT(t), "RESET ALL")
	require.NoError(t, err)
	var path string
	require.NoError(t, setter.QueryRow(ctxT(t), "SHOW search_path").Scan(&path))
	require.Equal(t, defPath, path)
	_, err = tmp.Exec(ctxT(t), "DROP TABLE scratch")
	require.NoError(t, err)
	waitPinReason(t, adm, db, tmp, "")
}
