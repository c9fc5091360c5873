package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// An open replication stream (pg_recvlogical through pgmux) against the admin console,
// the timeouts and the shutdown signals, checked against what PgBouncer 1.23+ does: its
// janitor closes a replication server marked close_needed (RECONNECT, a reload that moves
// the database) at once, since such a server is never released; PAUSE and a safe
// shutdown count it as an active server and wait for it; the server timeouts touch only
// unused servers.

// logicalStream is a pg_recvlogical --start through pgmux. Its reader goroutine sends
// each stdout line to lines; exited is closed once the process has ended, err then
// being Wait's answer.
type logicalStream struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// startStream creates slot in db (test_decoding, directly on PostgreSQL) and streams
// it through pgmux (env) with pg_recvlogical, which sends a status update every status
// seconds (0: none) and does not reconnect when the stream ends. It waits until the
// stream runs: a change made now arrives.
func startStream(t *testing.T, pg *pgtest.Server, env []string, db, slot, status string) *logicalStream {
	t.Helper()
	pg.ExecDB(t, db, fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'test_decoding')", slot))
	pg.ExecDB(t, db, "CREATE TABLE IF NOT EXISTS stream_t (id serial primary key, note text)")
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, pg.RequireBin(t, "pg_recvlogical"), "-d", db, "--slot", slot, "--start",
		"-f", "-", "-o", "include-xids=0", "-s", status, "-F", "0", "--no-loop")
	cmd.Env = env
	ls := &logicalStream{cmd: cmd, lines: make(chan string, 64), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = ls.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ls.lines <- sc.Text()
		}
		ls.err = cmd.Wait()
		close(ls.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-ls.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		stop()
	})
	ls.change(t, pg, db, slot+" runs")
	return ls
}

// change inserts a row noted note into stream_t directly on PostgreSQL and waits up to
// 10 s for the stream to deliver it.
func (ls *logicalStream) change(t *testing.T, pg *pgtest.Server, db, note string) {
	t.Helper()
	pg.ExecDB(t, db, fmt.Sprintf("INSERT INTO stream_t (note) VALUES ('%s')", note))
	want := fmt.Sprintf("note[text]:'%s'", note)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-ls.lines:
			if strings.HasPrefix(l, "table public.stream_t: INSERT: ") && strings.HasSuffix(l, want) {
				return
			}
		case <-ls.exited:
			t.Fatalf("the stream ended before %q arrived (%v); stderr:\n%s", want, ls.err, ls.stderr.String())
		case <-deadline:
			t.Fatalf("%q did not arrive within 10 s; stderr:\n%s", want, ls.stderr.String())
		}
	}
}

// running fails if the stream has ended.
func (ls *logicalStream) running(t *testing.T, why string) {
	t.Helper()
	select {
	case <-ls.exited:
		t.Fatalf("the stream ended %s (%v); stderr:\n%s", why, ls.err, ls.stderr.String())
	default:
	}
}

// ends waits up to within for the stream to end with an error and returns its stderr.
func (ls *logicalStream) ends(t *testing.T, within time.Duration, why string) string {
	t.Helper()
	select {
	case <-ls.exited:
		require.Error(t, ls.err, "pg_recvlogical fails when its stream is cut: %s", why)
		return ls.stderr.String()
	case <-time.After(within):
		t.Fatalf("the stream still runs %v after %s; stderr:\n%s", within, why, ls.stderr.String())
		return ""
	}
}

// stop ends the stream as a person would (SIGINT: CopyDone both ways) and waits for it.
func (ls *logicalStream) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, ls.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-ls.exited:
		require.NoError(t, ls.err, "pg_recvlogical ends cleanly on SIGINT; stderr:\n%s", ls.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("pg_recvlogical did not end after SIGINT; stderr:\n%s", ls.stderr.String())
	}
}

// consoleExec runs sql on the admin console in the background; the channel gets its error.
func consoleExec(admin *pgx.Conn, sql string, timeout time.Duration) <-chan error {
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := admin.Exec(ctx, sql)
		res <- err
	}()
	return res
}

// mustExec runs sql on the console and fails on an error.
func mustExec(t *testing.T, admin *pgx.Conn, sql string) {
	t.Helper()
	require.NoError(t, <-consoleExec(admin, sql, opTimeout), sql)
}

// TestReplicationPauseWaitsForStream: PAUSE db, as PgBouncer's (its per_loop_pause counts
// every active server, a replication one included), waits while a replication stream is
// open and leaves the stream alone; it returns once the replication client has left.
// RESUME meanwhile ends the waiting PAUSE instead, so it cannot hang the console.
func TestReplicationPauseWaitsForStream(t *testing.T) {
	pg, m := startReplication(t)
	db := pg.NewDatabase(t, "repl_pause")
	env := m.Env(pgtest.SuperUser, replPass, db)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ls := startStream(t, pg, env, db, "pause_slot", "1")

	paused := consoleExec(admin, "PAUSE "+db, time.Minute)
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned (%v) with a replication stream open", err)
	case <-time.After(1500 * time.Millisecond):
	}
	ls.running(t, "under PAUSE")
	ls.change(t, pg, db, "under PAUSE")

	ls.stop(t)
	select {
	case err := <-paused:
		require.NoError(t, err, "PAUSE completes once the replication client left")
	case <-time.After(10 * time.Second):
		t.Fatal("PAUSE did not return after the replication client left")
	}
	require.Zero(t, walsenders(t, pg))
	mustExec(t, admin, "RESUME "+db)

	// Another stream; RESUME from a second console ends the waiting PAUSE.
	ls2 := startStream(t, pg, env, db, "pause_slot2", "1")
	paused = consoleExec(admin, "PAUSE "+db, time.Minute)
	time.Sleep(500 * time.Millisecond)
	other := m.Console(t, pgtest.SuperUser, replPass)
	mustExec(t, other, "RESUME "+db)
	select {
	case err := <-paused:
		require.Error(t, err, "RESUME lifted the PAUSE before the stream ended")
		require.Contains(t, err.Error(), "RESUME")
	case <-time.After(10 * time.Second):
		t.Fatal("RESUME did not end the waiting PAUSE")
	}
	ls2.running(t, "after PAUSE and RESUME")
	ls2.change(t, pg, db, "after RESUME")
}

// TestReplicationReconnectEndsStream: RECONNECT closes a replication client's server at
// once, as PgBouncer's janitor does with a close_needed replication server, telling the
// client why (57P01); WAIT_CLOSE then returns, and a new stream works. Before, the server
// was left to close "when released", which a replication server never is: the stream went
// on against the old server and WAIT_CLOSE never returned.
func TestReplicationReconnectEndsStream(t *testing.T) {
	pg, m := startReplication(t)
	db := pg.NewDatabase(t, "repl_reconnect")
	env := m.Env(pgtest.SuperUser, replPass, db)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ls := startStream(t, pg, env, db, "reconnect_slot", "1")

	mustExec(t, admin, "RECONNECT "+db)
	stderr := ls.ends(t, 5*time.Second, "RECONNECT")
	require.Contains(t, stderr, "terminating replication connection to database "+db, stderr)
	require.NoError(t, <-consoleExec(admin, "WAIT_CLOSE "+db, 5*time.Second), "WAIT_CLOSE after RECONNECT")
	awaitNone(t, "the old walsender is gone", func() int { return walsenders(t, pg) })

	ls2 := startStream(t, pg, env, db, "reconnect_slot2", "1")
	ls2.change(t, pg, db, "new stream")
}

// TestReplicationReloadMovesStream: a reload that gives the database another server
// (host) closes a replication client's server at once, as PgBouncer's janitor does
// ("database configuration changed"), and the client's new stream goes to the new one.
// Before, the stream went on against the old server for as long as it lived.
func TestReplicationReloadMovesStream(t *testing.T) {
	pg := logicalPG(t)
	b := replBouncer()
	b.Databases = []string{fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port)}
	m := muxtest.Start(t, pg, muxtest.Options{Ini: &b, Reload: true})
	db := pg.NewDatabase(t, "repl_reload")
	env := m.Env(pgtest.SuperUser, replPass, db)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ls := startStream(t, pg, env, db, "reload_slot", "1")

	// The same PostgreSQL over its Unix socket: another host for pgmux.
	b.Databases = []string{fmt.Sprintf("* = host=%s port=%d", pg.SocketDir, pg.Port)}
	b.Write(t, filepath.Dir(m.Ini), pg, 6432)
	mustExec(t, admin, "RELOAD")
	stderr := ls.ends(t, 5*time.Second, "a RELOAD that moved the database")
	require.Contains(t, stderr, "terminating replication connection to database "+db, stderr)
	awaitNone(t, "the old walsender is gone", func() int { return walsenders(t, pg) })

	ls2 := startStream(t, pg, env, db, "reload_slot2", "1")
	ls2.change(t, pg, db, "new stream")
	var addr string
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	direct := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	require.NoError(t, direct.QueryRow(ctx,
		"SELECT coalesce(client_addr::text, 'local') FROM pg_stat_activity WHERE backend_type = 'walsender'").Scan(&addr))
	require.Equal(t, "local", addr, "the new stream's server is the one the reload named")
}

// TestReplicationReloadRemovesDatabase: a reload without the database ends its
// replication client, as PgBouncer's kill_database closes every client of it.
func TestReplicationReloadRemovesDatabase(t *testing.T) {
	pg := logicalPG(t)
	db := pg.NewDatabase(t, "repl_removed")
	b := replBouncer()
	line := func(name string) string {
		return fmt.Sprintf("%s = host=%s port=%d dbname=%s", name, pg.Host, pg.Port, db)
	}
	b.Databases = []string{line(db), line("postgres")}
	m := muxtest.Start(t, pg, muxtest.Options{Ini: &b, Reload: true})
	env := m.Env(pgtest.SuperUser, replPass, db)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	ls := startStream(t, pg, env, db, "removed_slot", "1")

	b.Databases = []string{line("postgres")}
	b.Write(t, filepath.Dir(m.Ini), pg, 6432)
	mustExec(t, admin, "RELOAD")
	stderr := ls.ends(t, 5*time.Second, "a RELOAD that removed the database")
	require.Contains(t, stderr, "was removed from the configuration", stderr)
	awaitNone(t, "the walsender is gone", func() int { return walsenders(t, pg) })
}

// TestReplicationStreamOutlivesTimeouts: server_lifetime and server_idle_timeout close
// only unused servers (PgBouncer's check_unused_servers), and a replication stream is
// exempt from query_timeout, idle_transaction_timeout, transaction_timeout and
// client_idle_timeout: its START_REPLICATION never completes and its client may send
// nothing for a long time (pg_recvlogical -s 0), yet the stream is alive. (PgBouncer
// would apply query_timeout to it; pgmux does not cut a healthy stream on a timer.)
func TestReplicationStreamOutlivesTimeouts(t *testing.T) {
	pg, m := startReplication(t, "server_lifetime = 1", "server_idle_timeout = 1", "query_timeout = 1",
		"idle_transaction_timeout = 1", "transaction_timeout = 1", "client_idle_timeout = 1")
	db := pg.NewDatabase(t, "repl_timeouts")
	ls := startStream(t, pg, m.Env(pgtest.SuperUser, replPass, db), db, "timeouts_slot", "0")
	time.Sleep(3500 * time.Millisecond)
	ls.running(t, "past every timeout")
	ls.change(t, pg, db, "still streaming")
	require.Equal(t, 1, walsenders(t, pg))
}

// TestReplicationSafeShutdown: SIGINT (safe shutdown: every server released) and SIGTERM
// (super safe: every client gone) wait for a replication client, as PgBouncer counts its
// server and its client, but not forever: at shutdown_timeout the stream is cut with
// 57P01 and pgmux exits. PgBouncer, without shutdown_timeout, waits until the stream ends.
func TestReplicationSafeShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			pg := logicalPG(t)
			m := startBinary(t, pg, replBouncer("shutdown_timeout = 3"))
			db := pg.NewDatabase(t, "repl_shutdown")
			env := muxtest.LibpqEnv(m.Host, m.Port, pgtest.SuperUser, replPass, db)
			ls := startStream(t, pg, env, db, "shutdown_slot", "1")

			start := time.Now()
			m.signal(t, sig)
			m.running(t, "with a replication stream open")
			ls.running(t, "right after the signal")
			ls.change(t, pg, db, "still streaming")
			stderr := ls.ends(t, 10*time.Second, "shutdown_timeout")
			require.Contains(t, stderr, "terminating connection due to administrator command", stderr)
			require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "cut at shutdown_timeout, not before")
			m.exits(t, 10*time.Second)
			awaitNone(t, "the walsender is gone", func() int { return walsenders(t, pg) })
		})
	}
}
