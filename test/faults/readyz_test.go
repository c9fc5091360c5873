package faults

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// readyz asks pgmux's /readyz handler (with its own time limit) and returns the status
// code, the body and how long it took.
func readyz(m *mux) (int, string, time.Duration) {
	start := time.Now()
	rec := httptest.NewRecorder()
	m.Srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, rec.Body.String(), time.Since(start)
}

// appDBLine is a [databases] line for the app database of pg, under its own name: /readyz
// checks configured databases, not the "*" fallback.
func appDBLine(pg *pgtest.Server) string {
	return fmt.Sprintf("%s = host=%s port=%d", pgtest.AppDB, pg.Host, pg.Port)
}

// pgProcs returns the postmaster's pid and its children's: every process of pg.
func pgProcs(t testing.TB, pg *pgtest.Server) []int {
	t.Helper()
	pm := pg.Pid()
	require.NotZero(t, pm)
	pids := []int{pm}
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hang stops every process of pg (SIGSTOP) and returns the function that lets them run
// again (SIGCONT), once whatever the calls. A backend exiting as the processes are listed
// (one of an earlier check's, say) is passed over.
func hang(t *testing.T, pg *pgtest.Server) (cont func()) {
	t.Helper()
	pids := pgProcs(t, pg)
	var once sync.Once
	cont = func() {
		once.Do(func() {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		})
	}
	for i, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); i == 0 || !errors.Is(err, syscall.ESRCH) {
			if err != nil {
				cont()
			}
			require.NoError(t, err)
		}
	}
	return cont
}

// TestReadyzServerHung: PostgreSQL hangs (every process SIGSTOPped) while pgmux holds
// idle server connections. pgmux cannot serve (a query would hang), so /readyz must say
// 503 within its time limit; it used to say 200 because a pool held connections. Once
// PostgreSQL runs again, /readyz is 200 again.
func TestReadyzServerHung(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{PoolSize: 5, Databases: []string{appDBLine(pg), "* = host=" + pg.Host}})
	// Five servers, all idle afterwards.
	var conns []*pgx.Conn
	for range 5 {
		c := connect(t, m.App(pgtest.AppDB))
		exec(t, c, "BEGIN")
		conns = append(conns, c)
	}
	for _, c := range conns {
		exec(t, c, "COMMIT")
	}
	readyzThroughHang(t, m, pg, "")
	for _, c := range conns {
		require.EqualValues(t, 1, queryInt(t, c, "SELECT 1"))
	}
}

// TestReadyzWrongServerPassword: the [databases] entry's password is wrong. No client has
// come yet; /readyz used to be 200 (a TCP connect to the host worked) until a client
// tried. It now logs in as the entry's user and says 503 with PostgreSQL's answer; an
// entry whose login works is ready.
func TestReadyzWrongServerPassword(t *testing.T) {
	pg := pgtest.Start(t)
	good := fmt.Sprintf("goodpw = host=%s port=%d dbname=%s user=%s password=%s", pg.Host, pg.Port,
		pgtest.AppDB, pgtest.ScramUser, pgtest.ScramPassword)
	m := startMux(t, pg, bouncer{Databases: []string{good}})
	code, body, _ := readyz(m)
	require.Equal(t, http.StatusOK, code, body)

	bad := fmt.Sprintf("wrongpw = host=%s port=%d dbname=%s user=%s password=not-the-password", pg.Host, pg.Port,
		pgtest.AppDB, pgtest.ScramUser)
	m = startMux(t, pg, bouncer{Databases: []string{good, bad}})
	code, body, _ = readyz(m)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "database wrongpw")
	require.Contains(t, body, "password authentication failed")
	require.NotContains(t, body, "database goodpw")
}

// TestReadyzHeld: a database held by the console (PAUSE db, SUSPEND) cannot serve a
// client now: /readyz says 503 and why, and 200 again after RESUME. It used to be 200 (a
// TCP connect to the host, or a pool holding its suspended connections).
func TestReadyzHeld(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Databases: []string{appDBLine(pg)}})
	adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	console := func(cmd string) {
		t.Helper()
		ctx, cancel := ctxT()
		defer cancel()
		_, err := adm.Exec(ctx, cmd, pgxSimple)
		require.NoError(t, err, cmd)
	}
	code, body, _ := readyz(m)
	require.Equal(t, http.StatusOK, code, body)

	console("PAUSE " + pgtest.AppDB)
	code, body, _ = readyz(m)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "paused")
	console("RESUME " + pgtest.AppDB)
	code, body, _ = readyz(m)
	require.Equal(t, http.StatusOK, code, body)

	c := connect(t, m.App(pgtest.AppDB))
	exec(t, c, "SELECT 1") // a pool, with a server that SUSPEND keeps open
	console("SUSPEND")
	code, body, _ = readyz(m)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "suspended")
	console("RESUME")
	code, body, _ = readyz(m)
	require.Equal(t, http.StatusOK, code, body)
	exec(t, c, "SELECT 1")
}

// TestReadyzAfterServerReturns: PostgreSQL stops and a client finds it down, so the pool
// holds connects back for server_login_retry (30 s here). /readyz says 503, with a fresh
// error. Once PostgreSQL is back, /readyz is 200 within a few seconds: it used to repeat
// the stale connect error until server_login_retry was over, while clients were already
// being served.
func TestReadyzAfterServerReturns(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{Databases: []string{appDBLine(pg)},
		Extra: []string{"server_login_retry = 30", "query_wait_timeout = 25"}})
	c := connect(t, m.App(pgtest.AppDB))
	exec(t, c, "SELECT 1")
	restart := stopServer(t, pg)
	ctx, cancel := ctxT()
	defer cancel()
	_, err := c.Exec(ctx, "SELECT 1")
	requireCode(t, err, "08006") // the first client to find the server down: the pool backs off now
	code, body, took := readyz(m)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "database "+pgtest.AppDB)
	require.Less(t, took, time.Second, "/readyz waited behind server_login_retry")

	restart()
	up := time.Now()
	eventually(t, 20*time.Second, "/readyz stayed 503 after PostgreSQL came back", func() bool {
		code, _, _ := readyz(m)
		return code == http.StatusOK
	})
	require.Less(t, time.Since(up), 5*time.Second, "/readyz waited out server_login_retry (30 s)")
	exec(t, c, "SELECT 1")
}

// TestReadyzHungServerNoCredentials: a database with neither user= nor auth_user, that no
// client has used yet: pgmux has no login of its own to check it with. PostgreSQL hangs
// (every process SIGSTOPped): its kernel still completes TCP connections, so the bare
// connect /readyz used to make said 200 while no client could log in. /readyz now sends
// a startup message and wants PostgreSQL's answer (a password request, or a login or
// refusal of its probe user), so it says 503 within its time limit, and 200 again once
// PostgreSQL runs; no client is needed for either.
func TestReadyzHungServerNoCredentials(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{Databases: []string{appDBLine(pg)}})
	readyzThroughHang(t, m, pg, "did not answer a startup message")
}

// readyzThroughHang requires /readyz to say 200, then, with pg hung (hang), 503 naming
// the app database (and why, when given) within its time limit, then 200 again once pg
// runs.
func readyzThroughHang(t *testing.T, m *mux, pg *pgtest.Server, why string) {
	t.Helper()
	code, body, _ := readyz(m)
	require.Equal(t, http.StatusOK, code, body)
	cont := hang(t, pg)
	defer cont()
	time.Sleep(1200 * time.Millisecond) // past the cached answer
	code, body, took := readyz(m)
	require.Equal(t, http.StatusServiceUnavailable, code, "PostgreSQL is hung but /readyz says ready: %s", body)
	require.Contains(t, body, "database "+pgtest.AppDB)
	require.Contains(t, body, why)
	require.Less(t, took, 4*time.Second, "/readyz must answer within its time limit")
	cont()
	eventually(t, 10*time.Second, "/readyz never became ready after PostgreSQL resumed", func() bool {
		code, _, _ := readyz(m)
		return code == http.StatusOK
	})
}
