package sticky

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// withParams adds startup parameters to a connection URL.
func withParams(t testing.TB, raw string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads + as itself
	return u.String()
}

func show(t testing.TB, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	require.NoError(t, conn.QueryRow(ctxT(t), "SELECT pg_catalog.current_setting($1)", name).Scan(&v))
	return v
}

// noPins asserts that no client of db is pinned, by SHOW CLIENTS and the pinned gauges.
func noPins(t testing.TB, m *mux, adm *pgx.Conn, db string) {
	t.Helper()
	for port, reason := range pinReasons(t, adm, db) {
		require.Empty(t, reason, "client at port %d is pinned", port)
	}
}

// TestSettingsFollowClients: 50 clients SET client_min_messages and their own
// statement_timeout at connect, over default_pool_size 5 and direct_pool_size 2, and run
// 100 queries each: none is pinned (so none waits for a direct slot), each sees its own
// values on whichever server it gets, and 30 other clients on the same pool always see
// the defaults.
func TestSettingsFollowClients(t *testing.T) {
	m := startMux(t, setup{poolSize: 5, directSize: 2, waitTimeout: 10})
	db := m.pg.NewDatabase(t, "follow")
	adm := m.admin(t)
	const setters, others, queries = 50, 30, 100

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, setters+others)
	run := func(i int, conn *pgx.Conn, wantTimeout, wantMsgs string) {
		defer wg.Done()
		pids := map[uint32]bool{}
		for j := 0; j < queries; j++ {
			var timeout, msgs string
			var pid uint32
			var err error
			if j%10 == 9 {
				err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if err := tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil {
						return err
					}
					return tx.QueryRow(ctx, "SELECT current_setting('client_min_messages'), pg_backend_pid()").Scan(&msgs, &pid)
				})
			} else {
				err = conn.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('client_min_messages'), pg_backend_pid()").
					Scan(&timeout, &msgs, &pid)
			}
			if err == nil && (timeout != wantTimeout || msgs != wantMsgs) {
				err = fmt.Errorf("client %d query %d: statement_timeout %q, client_min_messages %q; want %q, %q",
					i, j, timeout, msgs, wantTimeout, wantMsgs)
			}
			if err != nil {
				errs <- err
				return
			}
			pids[pid] = true
		}
		if len(pids) < 2 && wantTimeout != "0" {
			t.Logf("client %d stayed on one server for %d queries", i, queries)
		}
	}
	var conns []*pgx.Conn
	for i := 0; i < setters; i++ {
		conn := m.connect(t, db)
		_, err := conn.Exec(ctxT(t), "SET client_min_messages TO 'warning'")
		require.NoError(t, err)
		_, err = conn.Exec(ctxT(t), fmt.Sprintf("SET statement_timeout = '%ds'", 10+i))
		require.NoError(t, err)
		conns = append(conns, conn)
	}
	noPins(t, m, adm, db)
	for i, conn := range conns {
		wg.Add(1)
		go run(i, conn, fmt.Sprintf("%ds", 10+i), "warning")
	}
	for i := 0; i < others; i++ {
		conn := m.connect(t, db)
		wg.Add(1)
		go run(setters+i, conn, "0", "notice")
	}
	// While they run, nobody is pinned.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(200 * time.Millisecond):
			noPins(t, m, adm, db)
		}
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	noPins(t, m, adm, db)
	for reason, v := range m.pinnedGauges(t, db) {
		require.Zero(t, v, "pinned for %s", reason)
	}
}

// switching runs n rounds of f on conn while other clients keep the pool's servers busy,
// so that conn gets different servers, and records the servers (backend pids) it saw.
func switching(t *testing.T, m *mux, db string, conn *pgx.Conn, n int, pids map[uint32]bool, f func(round int)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before a failed assertion's cleanup closes them
	for i := 0; i < 6; i++ {
		c := m.connect(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = c.Exec(ctx, "SELECT pg_sleep(0.002)")
			}
		}()
	}
	for i := 0; i < n; i++ {
		var pid uint32
		require.NoError(t, conn.QueryRow(ctxT(t), "SELECT pg_backend_pid()").Scan(&pid))
		pids[pid] = true
		f(i)
	}
}

// TestSettingsTransactions: settings follow PostgreSQL's transaction rules through pgmux.
func TestSettingsTransactions(t *testing.T) {
	m := startMux(t, setup{poolSize: 3, directSize: 1})
	db := m.pg.NewDatabase(t, "settx")
	adm := m.admin(t)
	ctx := ctxT(t)
	conn := m.connect(t, db)
	pids := map[uint32]bool{}
	check := func(name, want string) {
		t.Helper()
		switching(t, m, db, conn, 12, pids, func(int) { require.Equal(t, want, show(t, conn, name), name) })
	}
	defer func() { require.GreaterOrEqual(t, len(pids), 3, "the client kept few servers: the test proves little") }()

	_, err := conn.Exec(ctx, "SET work_mem = '5MB'")
	require.NoError(t, err)
	check("work_mem", "5MB")

	t.Run("rolled back SET is gone", func(t *testing.T) {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SET work_mem = '7MB'")
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		check("work_mem", "5MB")
	})
	t.Run("SET LOCAL ends with its transaction", func(t *testing.T) {
		require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SET LOCAL work_mem = '9MB'")
			if err == nil {
				var v string
				err = tx.QueryRow(ctx, "SHOW work_mem").Scan(&v)
				if err == nil && v != "9MB" {
					err = fmt.Errorf("SET LOCAL inside its transaction: %q", v)
				}
			}
			return err
		}))
		check("work_mem", "5MB")
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT set_config('work_mem', '11MB', true)").Scan(&v))
		check("work_mem", "5MB")
	})
	t.Run("SET in a committed transaction stays", func(t *testing.T) {
		require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SET work_mem = '6MB'")
			return err
		}))
		check("work_mem", "6MB")
	})
	t.Run("SET in a failed statement does not count", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SET work_mem = '8MB'; SELECT 1/0")
		require.Equal(t, "22012", muxtest.PgError(t, err).Code)
		check("work_mem", "6MB")
		_, err = conn.Exec(ctx, "SET work_mem = 'lots'")
		require.Equal(t, "22023", muxtest.PgError(t, err).Code, "PostgreSQL's own error for a bad value")
		_, err = conn.Exec(ctx, "SET no_such_setting = 1")
		require.Equal(t, "42704", muxtest.PgError(t, err).Code)
		check("work_mem", "6MB")
	})
	t.Run("set_config session persists", func(t *testing.T) {
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT set_config('work_mem', $1, false)", "12MB").Scan(&v))
		check("work_mem", "12MB")
	})
	t.Run("custom setting follows the client", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SET myapp.tenant = 'acme'")
		require.NoError(t, err)
		check("myapp.tenant", "acme")
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT set_config('myapp.tenant', $1, false)", "globex").Scan(&v))
		check("myapp.tenant", "globex")
		other := m.connect(t, db)
		for i := 0; i < 10; i++ {
			var got *string
			require.NoError(t, other.QueryRow(ctx, "SELECT current_setting('myapp.tenant', true)").Scan(&got))
			if got != nil {
				require.Empty(t, *got, "another client's custom setting leaked")
			}
		}
	})
	t.Run("RESET and DEFAULT", func(t *testing.T) {
		_, err := conn.Exec(ctx, "RESET work_mem")
		require.NoError(t, err)
		check("work_mem", "4MB")
		_, err = conn.Exec(ctx, "SET statement_timeout = '3s'")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SET statement_timeout TO DEFAULT")
		require.NoError(t, err)
		check("statement_timeout", "0")
	})
	noPins(t, m, adm, db)
}

// TestResetToStartupValues: RESET returns a parameter to the value the client gave at
// startup, as on a direct connection, and RESET ALL restores all of them. Each step runs
// on a direct connection too, and the two must agree.
func TestResetToStartupValues(t *testing.T) {
	m := startMux(t, setup{poolSize: 3, directSize: 1})
	db := m.pg.NewDatabase(t, "reset")
	params := map[string]string{
		"options":          "-c DateStyle=Postgres,MDY -c statement_timeout=7s -c myapp.tenant=acme",
		"TimeZone":         "Asia/Tokyo",
		"application_name": "resetter",
	}
	viaMux := muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeCacheStatement, opTimeout)
	direct := muxtest.Connect(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params),
		pgx.QueryExecModeCacheStatement, opTimeout)
	names := []string{"DateStyle", "statement_timeout", "myapp.tenant", "TimeZone", "application_name", "work_mem"}
	pids := map[uint32]bool{}
	defer func() { require.GreaterOrEqual(t, len(pids), 3, "the client kept few servers: the test proves little") }()
	same := func(step string) {
		t.Helper()
		switching(t, m, db, viaMux, 4, pids, func(int) {
			for _, name := range names {
				require.Equal(t, show(t, direct, name), show(t, viaMux, name), "%s after %s", name, step)
			}
		})
		// What the server reported (ParameterStatus) agrees too.
		for _, name := range []string{"DateStyle", "TimeZone", "application_name"} {
			require.Equal(t, direct.PgConn().ParameterStatus(name), viaMux.PgConn().ParameterStatus(name),
				"ParameterStatus %s after %s", name, step)
		}
	}
	exec := func(sql string) {
		t.Helper()
		for _, c := range []*pgx.Conn{direct, viaMux} {
			_, err := c.Exec(ctxT(t), sql)
			require.NoError(t, err, sql)
		}
		same(sql)
	}
	same("startup")
	require.Equal(t, "Postgres, MDY", show(t, viaMux, "DateStyle"))
	exec("SET DateStyle = ISO")
	exec("RESET DateStyle")
	require.Equal(t, "Postgres, MDY", show(t, viaMux, "DateStyle"))
	exec("SET TimeZone = 'UTC'")
	exec("SET statement_timeout = '1min'")
	exec("SET myapp.tenant = 'globex'")
	exec("SET application_name = 'renamed'")
	exec("SET work_mem = '9MB'")
	exec("RESET ALL")
	require.Equal(t, "7s", show(t, viaMux, "statement_timeout"))
	exec("SET TimeZone TO DEFAULT")
	exec("BEGIN; SET DateStyle = 'German'; RESET DateStyle; COMMIT")
	exec("SET DateStyle = 'SQL, DMY'")
	_, err := viaMux.Exec(ctxT(t), "RESET ALL; SELECT 1/0")
	require.Error(t, err)
	_, err = direct.Exec(ctxT(t), "RESET ALL; SELECT 1/0")
	require.Error(t, err)
	same("RESET ALL in a failed implicit transaction")
}

// runDriver runs a driver's script through pgmux (db as the app user) with args, checking
// SHOW CLIENTS for pins every 100 ms while it runs, and returns its output, which must
// end with "ok want". A missing interpreter or driver skips the test, and fails it in CI.
func runDriver(t *testing.T, m *mux, db string, env []string, prog string, check []string, script string, want int, args ...string) {
	t.Helper()
	path, err := exec.LookPath(prog)
	if err == nil {
		_, err = muxtest.RunCmd(t, 30*time.Second, env, path, check...)
	}
	if err != nil {
		if pgtest.InCI() {
			t.Fatalf("%s cannot run %v (CI is set: this test must not skip): %v", prog, check, err)
		}
		t.Skipf("%s cannot run %v: %v", prog, check, err)
	}
	adm := m.admin(t)
	script, err = filepath.Abs(filepath.Join("testdata", script))
	require.NoError(t, err)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := muxtest.RunCmd(t, 3*time.Minute, env, path, append([]string{script, m.url(db)}, args...)...)
		done <- result{out, err}
	}()
	for {
		select {
		case r := <-done:
			require.NoError(t, r.err, r.out)
			require.Contains(t, r.out, fmt.Sprintf("ok %d", want), r.out)
			noPins(t, m, adm, db)
			return
		case <-time.After(100 * time.Millisecond):
			noPins(t, m, adm, db)
		}
	}
}

// TestRailsLikeClients: 20 ruby-pg connections configure themselves as ActiveRecord does
// at connect (SET client_min_messages, standard_conforming_strings, intervalstyle,
// timezone, a statement_timeout variable) over default_pool_size 5 and direct_pool_size 2:
// none pins, none waits, each keeps its settings.
func TestRailsLikeClients(t *testing.T) {
	m := startMux(t, setup{poolSize: 5, directSize: 2, waitTimeout: 10})
	db := m.pg.NewDatabase(t, "rails")
	runDriver(t, m, db, nil, "ruby", []string{"-e", "require 'pg'"}, "rails_connect.rb", 20*30, "20", "30")
}

// TestDriverSettings: node-postgres with statement_timeout, lock_timeout, options and
// application_name given at connect, psycopg 3 with options and set_config, psycopg2 (which
// SETs DateStyle at connect): 20 connections each over pool 5 / direct 2, none pins, each
// keeps its own values, RESET and RESET ALL return to the startup values.
func TestDriverSettings(t *testing.T) {
	m := startMux(t, setup{poolSize: 5, directSize: 2, waitTimeout: 10})
	nodePath := "NODE_PATH=" + strings.Join([]string{os.Getenv("NODE_PATH"), "/usr/share/nodejs", "/usr/lib/nodejs",
		"/usr/lib/node_modules", "/usr/local/lib/node_modules"}, ":")
	t.Run("node-postgres", func(t *testing.T) {
		db := m.pg.NewDatabase(t, "nodeset")
		runDriver(t, m, db, append(os.Environ(), nodePath), "node", []string{"-e", "require('pg')"},
			"node_settings.js", 20*30, "20", "30")
	})
	t.Run("psycopg", func(t *testing.T) {
		db := m.pg.NewDatabase(t, "pyset")
		runDriver(t, m, db, nil, "/usr/bin/python3", []string{"-c", "import psycopg, psycopg2"},
			"psycopg_settings.py", 2*10*20, "10", "20")
	})
}

// TestSettingsClientLeavesAfterSet: a client that leaves right after a SET (its read-back
// still outstanding) gives its server back to the pool, reset for the next client.
func TestSettingsClientLeavesAfterSet(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, directSize: 1})
	db := m.pg.NewDatabase(t, "leave")
	var first uint32
	for i := 0; i < 10; i++ {
		conn, err := muxtest.TryConnect(m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
		require.NoError(t, err)
		var pid uint32
		var mem string
		require.NoError(t, conn.QueryRow(ctxT(t), "SELECT pg_backend_pid(), current_setting('work_mem')").Scan(&pid, &mem))
		require.Equal(t, "4MB", mem, "round %d: the previous client's setting leaked", i)
		if i == 0 {
			first = pid
		}
		require.Equal(t, first, pid, "round %d: the server was closed instead of going back to the pool", i)
		_, err = conn.Exec(ctxT(t), fmt.Sprintf("SET work_mem = '%dMB'", 5+i))
		require.NoError(t, err)
		muxtest.CloseConn(conn)
	}
}
