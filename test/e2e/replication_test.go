package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// Replication connections through pgmux (replication=database, replication=true), as
// PgBouncer 1.23+ serves them: each gets a server connection of its own, opened with the
// same replication value, relayed unread (the CopyBoth stream included), closed with its
// client and never handed to another.

// replUserPass are the userlist entries of these tests: the superuser (who may
// replicate), app, and a role without REPLICATION.
const (
	replPass   = "replpass"
	noReplUser = "norepl"
	noReplPass = "noreplpass"
)

// startReplication starts a private PostgreSQL with wal_level = logical (the shared one
// is left alone: the setting needs a restart) and pgmux in front of it, transaction
// pooling, with the superuser as console admin and extra lines added.
func startReplication(t *testing.T, extra ...string) (*pgtest.Server, *mux) {
	t.Helper()
	pg := logicalPG(t)
	return pg, startMux(t, pg, replBouncer(extra...))
}

// logicalPG starts a private PostgreSQL with wal_level = logical and the role norepl.
func logicalPG(t *testing.T) *pgtest.Server {
	t.Helper()
	pg := pgtest.StartPrivate(t)
	pg.Exec(t, "ALTER SYSTEM SET wal_level = logical")
	pg.Restart(t, "fast")
	pg.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", noReplUser, noReplPass))
	return pg
}

// replBouncer is the configuration of these tests, with extra lines added.
func replBouncer(extra ...string) bouncer {
	return bouncer{
		Users: map[string]string{pgtest.SuperUser: replPass, pgtest.AppUser: pgtest.AppPassword,
			noReplUser: noReplPass},
		Extra: append([]string{"admin_users = " + pgtest.SuperUser, "query_wait_timeout = 5"}, extra...),
	}
}

// replConn opens a replication connection through pgmux with pgconn (simple protocol).
func replConn(t *testing.T, m *mux, user, password, db, replication string) (*pgconn.PgConn, error) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(m.URL(user, password, db))
	require.NoError(t, err)
	cfg.RuntimeParams["replication"] = replication
	cfg.RuntimeParams["application_name"] = "repl-test"
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return c, err
}

// showRows runs a SHOW on the console and returns its rows as column -> text.
func showRows(t *testing.T, admin *pgx.Conn, what string) []map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rows, err := admin.Query(ctx, "SHOW "+what)
	require.NoError(t, err)
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		row := make(map[string]string, len(vals))
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = fmt.Sprint(vals[i])
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}

// withColumn keeps the rows whose column col is val.
func withColumn(rows []map[string]string, col, val string) []map[string]string {
	var out []map[string]string
	for _, r := range rows {
		if r[col] == val {
			out = append(out, r)
		}
	}
	return out
}

// walsenders counts the server's walsender backends, asking PostgreSQL directly.
func walsenders(t *testing.T, pg *pgtest.Server) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	defer c.Close(ctx)
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'").Scan(&n))
	return n
}

// awaitNone waits up to 10 s for count to reach 0, failing with what otherwise.
func awaitNone(t *testing.T, what string, count func() int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for count() > 0 {
		require.True(t, time.Now().Before(deadline), what)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicationPhysicalBaseBackup runs pg_basebackup -X stream (two physical
// replication connections: the base backup's COPY and the WAL's CopyBoth stream) and
// pg_receivewal through pgmux, as they would against PostgreSQL.
func TestReplicationPhysicalBaseBackup(t *testing.T) {
	pg, m := startReplication(t)
	basebackup := pg.RequireBin(t, "pg_basebackup")
	receivewal := pg.RequireBin(t, "pg_receivewal")
	env := m.Env(pgtest.SuperUser, replPass, "postgres")

	dir := filepath.Join(t.TempDir(), "backup")
	out, err := muxtest.RunCmd(t, 2*time.Minute, env, basebackup, "-D", dir, "-X", "stream", "-c", "fast", "-v")
	require.NoError(t, err, "pg_basebackup through pgmux:\n%s", out)
	for _, f := range []string{"PG_VERSION", "backup_label", "backup_manifest"} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, "the backup has %s:\n%s", f, out)
	}
	verify := pg.RequireBin(t, "pg_verifybackup")
	out, err = muxtest.RunCmd(t, time.Minute, nil, verify, dir)
	require.NoError(t, err, "pg_verifybackup:\n%s", out)

	// pg_receivewal up to a position past a WAL switch: it stops there by itself.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	direct := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	var end string
	require.NoError(t, direct.QueryRow(ctx, "SELECT pg_switch_wal()::text").Scan(new(string)))
	require.NoError(t, direct.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&end))
	walDir := t.TempDir()
	out, err = muxtest.RunCmd(t, time.Minute, env, receivewal, "-D", walDir, "-E", end, "-n", "-v")
	require.NoError(t, err, "pg_receivewal through pgmux:\n%s", out)
	segs, err := os.ReadDir(walDir)
	require.NoError(t, err)
	require.NotEmpty(t, segs, "pg_receivewal wrote WAL:\n%s", out)
}

// TestReplicationLogicalDecoding creates a logical slot with test_decoding, streams a
// change another client made through pgmux (pg_recvlogical: CREATE_REPLICATION_SLOT,
// START_REPLICATION, the CopyBoth stream with its standby status updates), and drops
// the slot, all through pgmux.
func TestReplicationLogicalDecoding(t *testing.T) {
	pg, m := startReplication(t)
	recvlogical := pg.RequireBin(t, "pg_recvlogical")
	db := pg.NewDatabase(t, "repl_logical")
	env := m.Env(pgtest.SuperUser, replPass, db)

	out, err := muxtest.RunCmd(t, time.Minute, env, recvlogical, "-d", db, "--slot", "pgmux_slot",
		"--create-slot", "-P", "test_decoding")
	require.NoError(t, err, "pg_recvlogical --create-slot:\n%s", out)

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	app := connect(t, m.URL(pgtest.SuperUser, replPass, db)) // a normal client of the same pool
	_, err = app.Exec(ctx, "CREATE TABLE repl_t (id int primary key, note text)")
	require.NoError(t, err)
	_, err = app.Exec(ctx, "INSERT INTO repl_t VALUES (1, 'through pgmux')")
	require.NoError(t, err)

	// Streamed until the change arrives, then stopped by SIGINT, on which pg_recvlogical
	// ends the stream with CopyDone and waits for the server's.
	cmdCtx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	cmd := exec.CommandContext(cmdCtx, recvlogical, "-d", db, "--slot", "pgmux_slot", "--start", "-f", "-",
		"-o", "include-xids=0", "-s", "1")
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	want := `table public.repl_t: INSERT: id[integer]:1 note[text]:'through pgmux'`
	seen := make(chan string, 1)
	go func() {
		var got strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got.WriteString(sc.Text() + "\n")
			if sc.Text() == want {
				seen <- got.String()
				return
			}
		}
		seen <- got.String()
	}()
	var got string
	select {
	case got = <-seen:
	case <-cmdCtx.Done():
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	werr := cmd.Wait()
	require.Contains(t, got, want, "pg_recvlogical --start through pgmux; stderr:\n%s", stderr.String())
	require.NoError(t, werr, "pg_recvlogical ends cleanly after SIGINT (CopyDone both ways); stderr:\n%s", stderr.String())

	out, err = muxtest.RunCmd(t, time.Minute, env, recvlogical, "-d", db, "--slot", "pgmux_slot", "--drop-slot")
	require.NoError(t, err, "pg_recvlogical --drop-slot:\n%s", out)
	var slots int
	require.NoError(t, app.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	require.Zero(t, slots)
}

// TestReplicationRefusedByServer: a role without REPLICATION gets PostgreSQL's own
// refusal, and the refusal leaves the pool usable at once (no server_login_retry).
func TestReplicationRefusedByServer(t *testing.T) {
	pg, m := startReplication(t)
	_, err := replConn(t, m, noReplUser, noReplPass, "postgres", "database")
	require.Error(t, err)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "a PostgreSQL error, got %v", err)
	require.Equal(t, "42501", pe.Code, "PostgreSQL's insufficient_privilege: %v", pe)
	require.Contains(t, pe.Message, "replication", pe.Message)

	_, err = replConn(t, m, noReplUser, noReplPass, "postgres", "true")
	require.True(t, errors.As(err, &pe), "a PostgreSQL error, got %v", err)
	require.Equal(t, "42501", pe.Code, "physical too: %v", pe)

	_, err = replConn(t, m, noReplUser, noReplPass, "postgres", "bogus")
	require.True(t, errors.As(err, &pe), "a PostgreSQL error, got %v", err)
	require.Equal(t, "22023", pe.Code, "an invalid value is refused as PostgreSQL does: %v", pe)

	// The same user's normal connection works at once, and no server is left over.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c := connect(t, m.URL(noReplUser, noReplPass, "postgres"))
	var one int
	require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Zero(t, walsenders(t, pg))
}

// TestReplicationDedicatedServer: a replication client's server shows in SHOW CLIENTS
// and SHOW SERVERS as PgBouncer shows it (replication column), answers the replication
// commands, is never handed to a normal client of the same pool, and is closed when the
// client leaves.
func TestReplicationDedicatedServer(t *testing.T) {
	pg, m := startReplication(t)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	rc, err := replConn(t, m, pgtest.SuperUser, replPass, "postgres", "database")
	require.NoError(t, err)
	res, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Len(t, res[0].Rows, 1)
	require.Len(t, res[0].Rows[0], 4, "systemid, timeline, xlogpos, dbname")
	require.Equal(t, "postgres", string(res[0].Rows[0][3]))

	clients := withColumn(showRows(t, admin, "CLIENTS"), "replication", "logical")
	require.Len(t, clients, 1, "one logical replication client")
	servers := withColumn(showRows(t, admin, "SERVERS"), "replication", "logical")
	require.Len(t, servers, 1, "one logical replication server")
	require.Equal(t, clients[0]["ptr"], servers[0]["link"], "linked to each other")
	require.Equal(t, servers[0]["ptr"], clients[0]["link"])
	replPID := servers[0]["remote_pid"]

	// Normal clients of the same pool (transaction pooling) never get it.
	for i := 0; i < 3; i++ {
		c := connect(t, m.URL(pgtest.SuperUser, replPass, "postgres"))
		var kind, pid string
		require.NoError(t, c.QueryRow(ctx,
			"SELECT backend_type, pg_backend_pid()::text FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&kind, &pid))
		require.Equal(t, "client backend", kind)
		require.NotEqual(t, replPID, pid)
	}
	require.Equal(t, 1, walsenders(t, pg))

	require.NoError(t, rc.Close(ctx))
	awaitNone(t, "the replication server is closed when its client leaves", func() int {
		return len(withColumn(showRows(t, admin, "SERVERS"), "replication", "logical")) + walsenders(t, pg)
	})
	for _, s := range showRows(t, admin, "SERVERS") {
		require.NotEqual(t, replPID, s["remote_pid"], "the replication backend is gone, not pooled")
	}
}

// TestReplicationCountsAgainstPool: a replication server counts in the pool's size, as
// in PgBouncer: with default_pool_size = 1 the pool's idle server is closed to make room
// for it, and while it lives a normal client of the pool waits (query_wait_timeout).
func TestReplicationCountsAgainstPool(t *testing.T) {
	_, m := startReplication(t, "default_pool_size = 1", "query_wait_timeout = 2")
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	c := connect(t, m.URL(pgtest.SuperUser, replPass, "postgres"))
	var one int
	require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&one)) // one idle server now
	rc, err := replConn(t, m, pgtest.SuperUser, replPass, "postgres", "true")
	require.NoError(t, err)
	_, err = rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	require.NoError(t, err)
	servers := showRows(t, admin, "SERVERS")
	require.Len(t, withColumn(servers, "replication", "physical"), 1)
	require.Len(t, withColumn(servers, "replication", "none"), 0, "the idle server made room: %v", servers)

	err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	require.Error(t, err, "the pool's one slot is the replication client's")
	require.True(t, strings.Contains(err.Error(), "query_wait_timeout") || strings.Contains(err.Error(), "timed out"), err.Error())

	require.NoError(t, rc.Close(ctx))
	c2 := connect(t, m.URL(pgtest.SuperUser, replPass, "postgres"))
	require.NoError(t, c2.QueryRow(ctx, "SELECT 1").Scan(&one), "the slot is back once the replication client left")
}

// TestReplicationKill: KILL ends a replication client (with its FATAL) and closes its
// server, as it does any client of the database.
func TestReplicationKill(t *testing.T) {
	pg, m := startReplication(t)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rc, err := replConn(t, m, pgtest.SuperUser, replPass, "postgres", "database")
	require.NoError(t, err)
	_, err = rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	require.NoError(t, err)
	require.Equal(t, 1, walsenders(t, pg))

	_, err = admin.Exec(ctx, "KILL postgres")
	require.NoError(t, err)
	_, err = rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	require.Error(t, err, "the killed client's connection is closed")
	awaitNone(t, "the replication server is closed by KILL", func() int { return walsenders(t, pg) })
	_, err = admin.Exec(ctx, "RESUME postgres")
	require.NoError(t, err)
}
