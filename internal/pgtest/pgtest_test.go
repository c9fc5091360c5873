package pgtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func TestStartIsShared(t *testing.T) {
	a := pgtest.Start(t)
	b := pgtest.Start(t)
	require.Same(t, a, b)
	require.Equal(t, "127.0.0.1", a.Host)
	require.NotZero(t, a.Port)
	if a.DataDir != "" { // managed, not PGMUX_TEST_PG_URL
		require.NotZero(t, a.Pid())
		require.FileExists(t, a.LogFile)
	}
}

// authRequest sends a StartupMessage for user over TCP and returns the
// server's first reply: the authentication request its pg_hba rule chose.
func authRequest(t *testing.T, pg *pgtest.Server, user string) pgproto3.BackendMessage {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": user, "database": pgtest.AppDB},
	})
	require.NoError(t, fe.Flush())
	msg, err := fe.Receive()
	require.NoError(t, err)
	return msg
}

func TestRolesAuthenticate(t *testing.T) {
	pg := pgtest.Start(t)
	tests := []struct {
		user, password string
		wantAuth       pgproto3.BackendMessage // first reply to StartupMessage over TCP
		checksPassword bool
	}{
		{pgtest.SuperUser, "", &pgproto3.AuthenticationOk{}, false},
		{pgtest.AppUser, pgtest.AppPassword, &pgproto3.AuthenticationOk{}, false},
		{pgtest.MD5User, pgtest.MD5Password, &pgproto3.AuthenticationMD5Password{}, true},
		{pgtest.ScramUser, pgtest.ScramPassword, &pgproto3.AuthenticationSASL{}, true},
		{pgtest.PlainUser, pgtest.PlainPassword, &pgproto3.AuthenticationCleartextPassword{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			if pg.DataDir != "" { // an external server's pg_hba.conf is not ours
				got := authRequest(t, pg, tt.user)
				require.IsType(t, tt.wantAuth, got)
				if sasl, ok := got.(*pgproto3.AuthenticationSASL); ok {
					require.Contains(t, sasl.AuthMechanisms, "SCRAM-SHA-256")
				}
			}

			conn := pg.Connect(t, tt.user, tt.password, pgtest.AppDB)
			var user string
			require.NoError(t, conn.QueryRow(context.Background(), "SELECT current_user").Scan(&user))
			require.Equal(t, tt.user, user)
			_, err := conn.Exec(context.Background(), "CREATE TEMP TABLE t (x int)")
			require.NoError(t, err)

			if !tt.checksPassword {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bad, err := pgx.Connect(ctx, pg.URL(tt.user, "wrong-"+tt.password, pgtest.AppDB))
			if err == nil {
				bad.Close(ctx)
			}
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "28P01", pgErr.Code, "invalid_password")
		})
	}
}

func TestUnixSocket(t *testing.T) {
	pg := pgtest.Start(t)
	if pg.SocketDir == "" {
		t.Skip("external server: no socket directory") // only reachable with PGMUX_TEST_PG_URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=postgres", pg.SocketDir, pg.Port, pgtest.SuperUser))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('max_connections')::int").Scan(&n))
	require.Equal(t, 300, n)
}

func TestNewDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	var name string
	t.Run("use", func(t *testing.T) {
		name = pg.NewDatabase(t, "Pg-Test")
		require.True(t, strings.HasPrefix(name, "pg_test_"), name)
		conn := pg.Connect(t, pgtest.MD5User, pgtest.MD5Password, name)
		_, err := conn.Exec(context.Background(), "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
		require.NoError(t, err)
	})
	// The subtest's cleanup dropped it, even though md5user's session might linger.
	conn := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	var exists bool
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	require.False(t, exists)
}

func TestExec(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "CREATE TABLE IF NOT EXISTS pgtest_exec (x int); DROP TABLE pgtest_exec")
}

func TestClientPrograms(t *testing.T) {
	pg := pgtest.Start(t)
	psql := pg.RequireBin(t, "psql")
	out, err := exec.Command(psql, "-X", "-A", "-t", "-c", "SELECT current_user",
		pg.ConnString(pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB)).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, pgtest.ScramUser, strings.TrimSpace(string(out)))

	pgbench := pg.RequireBin(t, "pgbench")
	db := pg.NewDatabase(t, "bench")
	url := pg.URL(pgtest.MD5User, pgtest.MD5Password, db)
	out, err = exec.Command(pgbench, "-i", "-q", "-s", "1", url).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(pgbench, "-n", "-c", "4", "-t", "20", url).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "number of transactions actually processed: 80/80")
}

// TestRestart runs last in this file on purpose: it cuts every session.
func TestRestart(t *testing.T) {
	pg := pgtest.Start(t)
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			before := pg.Pid()
			conn := pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
			pg.Restart(t, mode)
			require.NotEqual(t, before, pg.Pid())
			// The old session is gone ...
			_, err := conn.Exec(context.Background(), "SELECT 1")
			require.Error(t, err)
			// ... and new ones work, with the same configuration.
			conn = pg.Connect(t, pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB)
			_, err = conn.Exec(context.Background(), "SELECT 1")
			require.NoError(t, err)
		})
	}
}

func TestStartPrivate(t *testing.T) {
	shared := pgtest.Start(t)
	pg := pgtest.StartPrivate(t)
	require.NotEqual(t, shared.Port, pg.Port)
	conn := pg.Connect(t, pgtest.MD5User, pgtest.MD5Password, pgtest.AppDB)
	require.NoError(t, conn.Ping(context.Background()))

	pg.Stop()
	pg.Stop() // idempotent; cleanup calls it again
	require.NoDirExists(t, pg.SocketDir)
	_, err := net.DialTimeout("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), time.Second)
	require.Error(t, err)
}

const helperEnv = "PGTEST_WATCHDOG_HELPER"

// TestWatchdogHelperProcess is the child of TestWatchdog; run directly it does
// nothing. It starts a server, reports it and kills its own process.
func TestWatchdogHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	pg := pgtest.StartPrivate(t)
	fmt.Printf("DIR=%s PORT=%d\n", pg.SocketDir, pg.Port)
	_ = os.Stdout.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestWatchdog checks that a test binary killed without cleanup leaves no
// running server and no files behind.
func TestWatchdog(t *testing.T) {
	pgtest.Start(t) // skip or fail like every integration test when PostgreSQL is missing
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdogHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", pgtest.EnvURL+"=")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var dir string
	var port int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "DIR=%s PORT=%d", &dir, &port); err == nil {
			break
		}
		t.Log(sc.Text())
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "helper should die by SIGKILL, got %v", err)
	require.NotEmpty(t, dir, "helper did not report its server")

	require.Eventually(t, func() bool {
		_, statErr := os.Stat(dir)
		c, dialErr := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if dialErr == nil {
			c.Close()
		}
		return os.IsNotExist(statErr) && dialErr != nil
	}, 60*time.Second, 100*time.Millisecond, "server in %s on port %d outlived its test process", dir, port)
}
