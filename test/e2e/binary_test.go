package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSIGHUPReload runs the pgmux binary with default_pool_size=2 under 20 busy clients,
// rewrites the ini with default_pool_size=4 and sends SIGHUP: no client may see an error,
// and PostgreSQL must then see more than 2 (and at most 4) server connections.
func TestSIGHUPReload(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "sighup")
	b := bouncer{PoolMode: "transaction", PoolSize: 2}
	m := startBinary(t, pg, b)
	admin := pg.Connect(t, pgtest.SuperUser, "", db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const clients = 20
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, db))
	}
	stop := make(chan struct{})
	var queries atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.After(30 * time.Second) // bound even if stop never comes
			for {
				select {
				case <-stop:
					return
				case <-deadline:
					return
				default:
				}
				var n int
				if err := c.QueryRow(ctx, "SELECT $1::int FROM pg_sleep(0.005)", i).Scan(&n); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if n != i {
					errs <- fmt.Errorf("client %d got %d", i, n)
					return
				}
				queries.Add(1)
			}
		}()
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	before := watchServerConns(watchCtx, admin, db, pgtest.AppUser)
	time.Sleep(time.Second)
	stopWatch()
	pb := <-before
	require.NoError(t, pb.err)
	require.Equal(t, 2, pb.max, "before reload: the pool of 2 is full")

	b.PoolSize = 4
	m.rewrite(t, b)
	require.NoError(t, m.cmd.Process.Signal(syscall.SIGHUP))
	// Watch until the pool has grown, then a little longer to see it stays within 4.
	watchCtx, stopWatch = context.WithCancel(ctx)
	after := watchServerConns(watchCtx, admin, db, pgtest.AppUser)
	admin2 := pg.Connect(t, pgtest.SuperUser, "", db)
	require.Eventually(t, func() bool { return serverConns(ctx, t, admin2, db, pgtest.AppUser) > 2 },
		10*time.Second, 50*time.Millisecond, "pgmux log:\n%s", m.out)
	time.Sleep(500 * time.Millisecond)
	stopWatch()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	pa := <-after
	require.NoError(t, pa.err)
	require.Greater(t, pa.max, 2)
	require.LessOrEqual(t, pa.max, 4)
	require.Positive(t, queries.Load())
	require.Contains(t, m.out.String(), "configuration reloaded")
}

// TestPgBouncerConfigCompat writes a pgbouncer.ini and userlist.txt, has Debian's real
// PgBouncer accept and serve them, then starts pgmux on the very same files, unchanged.
func TestPgBouncerConfigCompat(t *testing.T) {
	pg := pgtest.Start(t)
	psql := pg.RequireBin(t, "psql")
	pgbouncer := "/usr/sbin/pgbouncer"
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		pgbouncer = p
	}
	if _, err := os.Stat(pgbouncer); err != nil {
		if pgtest.InCI() {
			t.Fatalf("pgbouncer not installed: %v", err)
		}
		t.Skipf("pgbouncer not installed: %v", err)
	}
	// PgBouncer refuses to run as root: as root, run it as the postgres OS user, in a
	// directory that user can read.
	var attr *syscall.SysProcAttr
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		dir, err = os.MkdirTemp("/tmp", "pgmux-e2e-ini-")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		require.NoError(t, os.Chmod(dir, 0o755))
	}
	b := bouncer{
		PoolMode: "transaction", PoolSize: 3, MaxClientConn: 50, AuthType: "md5",
		Users: map[string]string{
			pgtest.AppUser: pgtest.AppPassword,
			pgtest.MD5User: md5Secret(pgtest.MD5User, pgtest.MD5Password),
		},
		Databases: []string{
			fmt.Sprintf("%s = host=%s port=%d dbname=%s", pgtest.AppDB, pg.Host, pg.Port, pgtest.AppDB),
			fmt.Sprintf("aliased = host=%s port=%d dbname=%s pool_size=2", pg.Host, pg.Port, pgtest.AppDB),
		},
		Extra: []string{
			"ignore_startup_parameters = extra_float_digits",
			"server_reset_query = DISCARD ALL",
			"admin_users = postgres",
			"reserve_pool_size = 1",
			"reserve_pool_timeout = 3",
			"server_lifetime = 3600",
			"query_wait_timeout = 30",
			"log_connections = 1",
		},
	}
	query := func(t *testing.T, port int, user, password, db string) {
		t.Helper()
		out, err := muxtest.RunCmd(t, 30*time.Second, muxtest.LibpqEnv("127.0.0.1", port, user, password, db),
			psql, "-X", "-At", "-c", "SELECT current_user || '@' || current_database()")
		require.NoError(t, err, out)
		require.Equal(t, user+"@"+pgtest.AppDB+"\n", out)
	}

	var ini string
	var port int
	var bouncerProc *proc
	for range 3 {
		port = freePort(t)
		ini = b.Write(t, dir, pg, port)
		p, err := startProcIn(t, dir, "process up", attr, os.Environ(), pgbouncer, filepath.Base(ini))
		if err == nil {
			bouncerProc = p
			break
		}
		t.Logf("pgbouncer on port %d: %v", port, err)
	}
	require.NotNil(t, bouncerProc, "pgbouncer did not start")
	t.Run("pgbouncer-serves-it", func(t *testing.T) {
		query(t, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
		query(t, port, pgtest.MD5User, pgtest.MD5Password, "aliased")
	})
	// SIGINT is PgBouncer's safe shutdown (SIGTERM too, since 1.23, but not in 1.18).
	_ = bouncerProc.stop(t, syscall.SIGINT, 10*time.Second)

	t.Run("pgmux-serves-it", func(t *testing.T) {
		p, err := startProcIn(t, dir, "pgmux listening", nil, os.Environ(), pgmuxBinary(t), ini)
		require.NoError(t, err)
		query(t, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
		query(t, port, pgtest.MD5User, pgtest.MD5Password, "aliased")
		require.NoError(t, p.stop(t, syscall.SIGTERM, 10*time.Second), "%s", p.out)
	})

	t.Run("pgmux-in-process", func(t *testing.T) {
		m := muxtest.Start(t, nil, muxtest.Options{IniPath: ini})
		query(t, m.Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	})
}
