package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestStandby starts a primary and a streaming standby, sees a row replicate, then
// promotes the standby and writes to it.
func TestStandby(t *testing.T) {
	primary := pgtest.StartPrivate(t)
	standby := primary.StartStandby(t, "recovery_min_apply_delay = '50ms'")
	require.NotEqual(t, primary.Port, standby.Port)
	require.False(t, primary.InRecovery(t))
	require.True(t, standby.InRecovery(t))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	_, err := p.Exec(ctx, "CREATE TABLE replicated (v int); INSERT INTO replicated VALUES (42)")
	require.NoError(t, err)
	s := standby.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	require.Eventually(t, func() bool {
		var v int
		return s.QueryRow(ctx, "SELECT v FROM replicated").Scan(&v) == nil && v == 42
	}, 30*time.Second, 20*time.Millisecond, "the row reaches the standby")
	var delay string
	require.NoError(t, s.QueryRow(ctx, "SHOW recovery_min_apply_delay").Scan(&delay))
	require.Equal(t, "50ms", delay, "conf lines reach the standby")
	_, err = s.Exec(ctx, "INSERT INTO replicated VALUES (1)")
	require.ErrorContains(t, err, "read-only transaction")

	primary.StopPostmaster(t, "fast")
	standby.Promote(t)
	require.False(t, standby.InRecovery(t))
	_, err = s.Exec(ctx, "INSERT INTO replicated VALUES (2)")
	require.NoError(t, err, "the promoted standby takes writes on the same session")
}
