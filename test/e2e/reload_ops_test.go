package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestReloadAndPauseUnderLoad changes the pool size 20→5→20 and the pool mode
// transaction→session→transaction through the admin console, then PAUSEs and RESUMEs,
// while pgbench runs 50 clients: no transaction may fail.
func TestReloadAndPauseUnderLoad(t *testing.T) {
	pg := pgtest.Start(t)
	pgbench := pg.RequireBin(t, "pgbench")
	db := pg.NewDatabase(t, "reload_ops")
	m := startMux(t, pg, bouncer{Extra: []string{"admin_users = " + pgtest.AppUser}})
	env := m.Env(pgtest.AppUser, pgtest.AppPassword, db)
	out, err := muxtest.RunCmd(t, 2*time.Minute, env, pgbench, "-i", "-s", "2", "-q")
	require.NoError(t, err, "pgbench -i:\n%s", out)

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := muxtest.RunCmd(t, 3*time.Minute, env, pgbench, "-n", "-c", "50", "-j", "2", "-T", "20")
		done <- result{out, err}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminCfg, err := pgx.ParseConfig(m.URL(pgtest.AppUser, pgtest.AppPassword, "pgbouncer"))
	require.NoError(t, err)
	adminCfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	require.NoError(t, err)
	defer admin.Close(context.Background())

	steps := []string{
		"SET default_pool_size = 5",
		"SET default_pool_size = 20",
		"SET pool_mode = session",
		"SET pool_mode = transaction",
		"PAUSE",
		"RESUME",
	}
	time.Sleep(2 * time.Second)
	for _, step := range steps {
		_, err := admin.Exec(ctx, step)
		require.NoError(t, err, step)
		time.Sleep(2 * time.Second)
	}

	r := <-done
	require.NoError(t, r.err, "pgbench:\n%s", r.out)
	require.Contains(t, r.out, "number of failed transactions: 0 (0.000%)", r.out)
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(r.out)
	require.NotNil(t, processed, r.out)
	require.NotEqual(t, "0", processed[1])
	t.Logf("pgbench through reloads and pause: %s transactions", processed[1])
}
