package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// serverPIDs returns the backend pids of db's server connections, as SHOW SERVERS lists
// them.
func serverPIDs(t *testing.T, adm *pgx.Conn, db string) []int32 {
	t.Helper()
	_, rows := show(t, adm, "SHOW SERVERS")
	var pids []int32
	for _, r := range rows {
		if r["database"] == db {
			pids = append(pids, int32(num(t, r, "remote_pid")))
		}
	}
	return pids
}

// backendsAlive counts the backends among pids that PostgreSQL still runs (-1: the
// count failed). It is called from require.Eventually's goroutine: it must not fail the
// test itself.
func backendsAlive(direct *pgx.Conn, pids []int32) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&n); err != nil {
		return -1
	}
	return n
}

// TestAdminPauseClosesServers: PAUSE disconnects from the servers, as PgBouncer's does
// before a database restart: the idle server at once, the one in a transaction once the
// transaction ends; PAUSE answers only then, SHOW SERVERS lists nothing and PostgreSQL
// runs none of the backends; after RESUME the clients get new servers.
func TestAdminPauseClosesServers(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	idle := h.connect(t, "app", "app", false)
	busy := h.connect(t, "app", "app", false)
	ctx := context.Background()
	tx, err := busy.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	execSQL(t, idle, "SELECT 1") // a second server: the first is in busy's transaction
	adm := h.admin(t)
	pids := serverPIDs(t, adm, "app")
	require.Len(t, pids, 2)
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	require.Equal(t, 2, backendsAlive(direct, pids))

	paused := make(chan error, 1)
	go func() {
		_, err := adm.Exec(ctx, "PAUSE")
		paused <- err
	}()
	// The idle server goes at once; the busy one stays until its transaction ends.
	require.Eventually(t, func() bool { return backendsAlive(direct, pids) == 1 }, 5*time.Second, 20*time.Millisecond,
		"PAUSE closes the idle server at once")
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a transaction was open: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, tx.Commit(ctx))
	select {
	case err := <-paused:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("PAUSE did not return after the transaction ended")
	}
	adm2 := h.admin(t)
	require.Empty(t, serverPIDs(t, adm2, "app"), "SHOW SERVERS after PAUSE")
	require.Eventually(t, func() bool { return backendsAlive(direct, pids) == 0 }, 5*time.Second, 20*time.Millisecond,
		"PostgreSQL still runs the backends of the servers PAUSE should have closed")
	_, rows := show(t, adm2, "SHOW POOLS")
	p := rowWhere(rows, "database", "app")
	require.Zero(t, num(t, p, "sv_idle")+num(t, p, "sv_active")+num(t, p, "sv_used"))

	_, err = adm2.Exec(ctx, "RESUME")
	require.NoError(t, err)
	execSQL(t, idle, "SELECT 1")
	execSQL(t, busy, "SELECT 1")
	now := serverPIDs(t, adm2, "app")
	require.NotEmpty(t, now)
	for _, pid := range now {
		require.NotContains(t, pids, pid, "a server from before PAUSE")
	}
}
