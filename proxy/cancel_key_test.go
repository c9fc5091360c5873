package proxy_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestCancelKeysRandom: the PID and secret key a login is given (BackendKeyData) are both
// random, as PgBouncer's cancel keys are: two logins get unrelated ones, a login that
// takes the place of one that left gets another PID, and a CancelRequest still cancels
// the query of the client it names, and no other's. pgmux gave out its clients' slot
// numbers as PIDs: 1, 2, 3, the same again for the next login after a logout.
func TestCancelKeysRandom(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	a := h.connect(t, "app", "app", false)
	b := h.connect(t, "app", "app", false)
	pa, pb := a.PgConn().PID(), b.PgConn().PID()
	t.Logf("PIDs %d and %d", pa, pb)
	require.NotEqual(t, pa, pb)
	require.NotEqual(t, a.PgConn().SecretKey(), b.PgConn().SecretKey())
	// Random 32-bit PIDs are both below 2^16 once in 2^32; slot numbers always are.
	require.False(t, pa < 1<<16 && pb < 1<<16, "PIDs %d and %d look like counters", pa, pb)

	require.NoError(t, a.Close(context.Background()))
	require.Eventually(t, func() bool { return len(h.srv.Sessions()) == 1 }, 10*time.Second, 10*time.Millisecond)
	c := h.connect(t, "app", "app", false)
	t.Logf("after a logout: PID %d", c.PgConn().PID())
	require.NotEqual(t, pa, c.PgConn().PID(), "the next login took the PID of the one that left")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the query reaches its server
	require.NoError(t, c.PgConn().CancelRequest(ctx))
	select {
	case err := <-done:
		require.Equal(t, "57014", sqlState(err), "%v", err)
	case <-ctx.Done():
		t.Fatal("the cancel request did not cancel the query")
	}
	var one int
	require.NoError(t, b.QueryRow(ctx, "SELECT 1").Scan(&one), "the other client is untouched")
	require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&one))

	// SHOW FDS lists each key as a bigint a driver reads, whatever its top bit.
	_, rows := show(t, h.admin(t), "SHOW FDS")
	var keys []int64
	for _, r := range rows {
		if r["task"] == "client" {
			keys = append(keys, r["cancel"].(int64))
		}
	}
	for _, x := range []*pgx.Conn{b, c} {
		require.Contains(t, keys, int64(uint64(x.PgConn().PID())<<32|uint64(binary.BigEndian.Uint32(x.PgConn().SecretKey()))))
	}
}
