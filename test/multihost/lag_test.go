package multihost

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// stopWALReceiver empties the standby's primary_conninfo (ALTER SYSTEM and a reload) and
// waits until its WAL receiver is gone; it returns the former value.
func stopWALReceiver(t *testing.T, standby *pgtest.Server) string {
	t.Helper()
	sc := standby.Connect(t, pgtest.SuperUser, "", "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var conninfo string
	require.NoError(t, sc.QueryRow(ctx, "SHOW primary_conninfo").Scan(&conninfo))
	require.NotEmpty(t, conninfo)
	setConninfo(t, standby, "")
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, sc.QueryRow(ctx, "SELECT count(*) FROM pg_stat_wal_receiver").Scan(&n))
		return n == 0
	}, 20*time.Second, 20*time.Millisecond, "the standby's WAL receiver stops")
	return conninfo
}

// setConninfo sets the standby's primary_conninfo and reloads its configuration.
func setConninfo(t *testing.T, standby *pgtest.Server, conninfo string) {
	t.Helper()
	lit := "'" + conninfo + "'"
	if conninfo != "" {
		// A conninfo from pg_basebackup -R quotes its values with single quotes.
		lit = "$c$" + conninfo + "$c$"
	}
	standby.Exec(t, "ALTER SYSTEM SET primary_conninfo = "+lit)
	standby.Exec(t, "SELECT pg_reload_conf()")
}

// waitHostRow polls SHOW HOSTS until the row for port satisfies ok, within the given
// time, and returns it; it fails with the last row seen.
func waitHostRow(t *testing.T, adm *pgx.Conn, port int, within time.Duration, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var r map[string]any
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		if r = hostRow(show(t, adm, "SHOW HOSTS"), port); r != nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("SHOW HOSTS: %s: not within %v; last row %v", what, within, r)
		}
	}
}

// TestStoppedWALReceiverLags: a standby whose WAL receiver stopped (primary_conninfo
// emptied) replays nothing more while its server's own measure says 0 (it has replayed
// all it received). pgmux measures it against the primary's positions: once the primary
// writes, SHOW HOSTS and the metrics show it lagging more than replica_max_lag, and a new
// client's read (no write of its own to wait for) goes to the primary and sees every row.
// When the receiver runs again the standby catches up and reads go back to it.
func TestStoppedWALReceiverLags(t *testing.T) {
	const maxLag = 2000
	p := startReplicaPair(t, nil, nil, fmt.Sprintf("replica_reads=auto replica_max_lag=%d", maxLag)).
		ready(t, "CREATE TABLE lagged (n int); GRANT ALL ON lagged TO app; INSERT INTO lagged VALUES (0)")
	adm := p.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The primary commits asynchronously (pgtest's synchronous_commit = off): its write
	// position, which ready waits for, can be short of the commit.
	sc := p.standby.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	require.Eventually(t, func() bool {
		var n int
		return sc.QueryRow(ctx, "SELECT count(*) FROM lagged").Scan(&n) == nil && n == 1
	}, 20*time.Second, 20*time.Millisecond, "the standby has the table")
	// read runs a read on a new client connection: the rows it sees, whether on the standby.
	read := func() (n int, standby bool) {
		c := p.connect(t, "app")
		defer func() { _ = c.Close(ctx) }()
		require.NoError(t, c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM lagged").Scan(&n, &standby))
		return n, standby
	}
	require.Eventually(t, func() bool { _, standby := read(); return standby }, 10*time.Second, 20*time.Millisecond,
		"a new client's read goes to the standby; %s", primaryReasons(t, p.reg))

	// An idle primary: a standby that has replayed all of it does not lag, however long
	// the primary stays idle.
	var sb map[string]any
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		sb = hostRow(show(t, adm, "SHOW HOSTS"), p.standby.Port)
		require.LessOrEqual(t, sb["replication_lag_ms"], int64(maxLag), "idle primary: %v", sb)
	}

	conninfo := stopWALReceiver(t, p.standby)
	p.primary.ExecDB(t, "app", "INSERT INTO lagged SELECT generate_series(1, 5000)")
	wrote := time.Now()
	sb = waitHostRow(t, adm, p.standby.Port, 20*time.Second, "the standby lags over replica_max_lag", func(r map[string]any) bool {
		lag, _ := r["replication_lag_ms"].(int64)
		return lag > maxLag
	})
	t.Logf("%v after the write SHOW HOSTS shows the standby at %v ms, %v bytes behind",
		time.Since(wrote).Round(time.Millisecond), sb["replication_lag_ms"], sb["replication_lag_bytes"])
	lagBytes, _ := sb["replication_lag_bytes"].(int64)
	require.Positive(t, lagBytes)
	v, ok := gauge(t, p.reg, "pgmux_host_replication_lag_seconds", map[string]string{"host": "127.0.0.1:" + itoa(p.standby.Port)})
	require.True(t, ok)
	require.Greater(t, v, float64(maxLag)/1000, "the lag metric")
	for range 3 {
		n, standby := read()
		require.False(t, standby, "a new client's read avoids the lagging standby")
		require.Equal(t, 5001, n, "and sees every row")
	}

	setConninfo(t, p.standby, conninfo)
	waitHostRow(t, adm, p.standby.Port, 30*time.Second, "the standby catches up", func(r map[string]any) bool {
		return r["replication_lag_ms"] == int64(0)
	})
	require.Eventually(t, func() bool {
		n, standby := read()
		return standby && n == 5001
	}, 10*time.Second, 20*time.Millisecond, "reads go back to the standby; %s", primaryReasons(t, p.reg))
}
