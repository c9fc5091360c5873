package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestEnvTypoWarned: a sidecar configured by its environment alone (DATABASE_URL and
// PGMUX_ variables, as on Fly) with misspelt variables starts, serves, and names each
// variable it ignored with the one meant, as a misspelt pgbouncer.ini key is named with
// the closest known key. Before, PGMUX_POOLSIZE=3 left the pool at 20 without a word.
func TestEnvTypoWarned(t *testing.T) {
	pg := pgtest.Start(t)
	port := freePort(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGMUX_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"DATABASE_URL="+pg.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB),
		"PGMUX_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"PGMUX_POOL_MODE=session",
		"PGMUX_POOLSIZE=3",          // a typo of PGMUX_POOL_SIZE
		"PGMUX_DEFAULT_POOL_SIZE=3", // the ini key's name; the variable is PGMUX_POOL_SIZE
		"PGMUX_SERVER_LIFETIME=60",  // a setting with no variable
		"PGMUX_VERBOSITY=2",         // nothing pgmux knows
	)
	p, err := startProc(t, "pgmux listening", nil, env, pgmuxBinary(t))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgmux output:\n%s", p.out)
		}
	})

	conn := connect(t, muxtest.URL("127.0.0.1", port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	var one int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))

	var warnings []string
	listening := ""
	for _, line := range strings.Split(p.out.String(), "\n") {
		var e struct {
			Level, Msg string
			PoolMode   string `json:"pool_mode"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e.Level == "warn" && strings.Contains(e.Msg, "environment variable") {
			warnings = append(warnings, e.Msg)
		}
		if e.Msg == "pgmux listening" {
			listening = e.PoolMode
		}
	}
	require.Equal(t, "session", listening, "the variables pgmux reads still apply")
	ignored := " is not one pgmux reads and is ignored"
	require.Equal(t, []string{
		`config: environment variable PGMUX_DEFAULT_POOL_SIZE` + ignored + ` (did you mean "PGMUX_POOL_SIZE"?)`,
		`config: environment variable PGMUX_POOLSIZE` + ignored + ` (did you mean "PGMUX_POOL_SIZE"?)`,
		`config: environment variable PGMUX_SERVER_LIFETIME` + ignored + ` (server_lifetime can be set in a pgbouncer.ini only)`,
		`config: environment variable PGMUX_VERBOSITY` + ignored + ` (pgmux reads PGMUX_UPSTREAM, PGMUX_LISTEN, ` +
			`PGMUX_POOL_MODE, PGMUX_POOL_SIZE, PGMUX_MAX_CLIENT_CONN, PGMUX_METRICS_ADDR, PGMUX_AUTH_TYPE, ` +
			`PGMUX_ADMIN_USERS, PGMUX_STATS_USERS, PGMUX_CLIENT_LOOP, PGMUX_ADAPTIVE_PROCS; flags: pgmux --help)`,
	}, warnings)
}
