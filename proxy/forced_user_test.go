package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestForcedUserOnePool: a database that logs in as a fixed user (user= in its
// [databases] line) has one pool for all its clients, keyed by that user, as in
// PgBouncer: pool_size bounds the server connections whoever the clients are, and SHOW
// POOLS shows one row under the forced user. pgmux made a pool per client user, each up
// to pool_size connections as the forced user.
func TestForcedUserOnePool(t *testing.T) {
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{
		extra: map[string]string{"default_pool_size": "2"},
		dbs: map[string]string{"forced": fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s",
			pg.Host, pg.Port, pgtest.AppDB, pgtest.AppUser, pgtest.AppPassword)},
	})
	adm := h.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob, bob2 := h.connect(t, "alice", "forced", false), h.connect(t, "bob", "forced", false), h.connect(t, "bob", "forced", false)
	holdA, err := alice.Begin(ctx)
	require.NoError(t, err)
	_, err = holdA.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	holdB, err := bob.Begin(ctx)
	require.NoError(t, err)
	_, err = holdB.Exec(ctx, "SELECT 1")
	require.NoError(t, err)

	// The pool's two servers are taken: a third client waits, whatever its user.
	done := make(chan error, 1)
	go func() { _, err := bob2.Exec(ctx, "SELECT 1"); done <- err }()
	var row map[string]any
	for range 200 {
		_, rows := show(t, adm, "SHOW POOLS")
		var forced []map[string]any
		for _, r := range rows {
			if r["database"] == "forced" {
				forced = append(forced, r)
			}
		}
		require.Len(t, forced, 1, "one pool for the forced user: %v", forced)
		row = forced[0]
		if num(t, row, "cl_waiting") == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, pgtest.AppUser, row["user"])
	require.Equal(t, int64(2), num(t, row, "cl_active"), "%v", row)
	require.Equal(t, int64(1), num(t, row, "cl_waiting"), "the third client waits for one of the two servers: %v", row)
	require.Equal(t, int64(2), num(t, row, "sv_active"), "%v", row)

	require.NoError(t, holdA.Commit(ctx))
	require.NoError(t, <-done, "the waiting client gets the freed server")
	require.NoError(t, holdB.Commit(ctx))
}
