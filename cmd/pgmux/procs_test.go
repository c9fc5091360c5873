package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestAdaptiveProcs: with adaptive_procs on (the default) pgmux runs one processor while
// idle and says so on /metrics; turned off by a RELOAD it runs every processor again; on
// again, one. The process here may use runtime.GOMAXPROCS(0) processors (2 in CI).
// Clients connected meanwhile follow: on the first client loop while one processor
// runs, spread over the loops at their next query once every processor does, and back
// on the first after (pgmux_loop_clients).
func TestAdaptiveProcs(t *testing.T) {
	max := runtime.GOMAXPROCS(0)
	pg := pgtest.Start(t)
	port, mport := freePort(t), freePort(t)
	environ, setenv := mutableEnv(map[string]string{"PGMUX_LISTEN": "", "PGMUX_ADMIN_USERS": "admin"})
	args := []string{"--upstream", pg.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB), "--log-level", "debug",
		"--listen", "127.0.0.1:" + strconv.Itoa(port), "--metrics-addr", "127.0.0.1:" + strconv.Itoa(mport)}
	t.Cleanup(func() { // after startRun's: once pgmux has stopped
		require.Equal(t, max, runtime.GOMAXPROCS(0), "every processor back once pgmux has stopped")
	})
	logs := startRun(t, args, environ)

	gauge := func(name string) int {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)$`).FindSubmatch(b)
		require.NotNil(t, m, "%s on /metrics", name)
		n, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		return n
	}
	require.Equal(t, max, gauge("pgmux_procs_max"))
	require.Eventually(t, func() bool { return gauge("pgmux_procs") == 1 && runtime.GOMAXPROCS(0) == 1 },
		5*time.Second, 20*time.Millisecond, "one processor while idle")

	// Four clients connect while one processor runs, and each queries.
	qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer qcancel()
	clients := make([]*pgx.Conn, 4)
	for i := range clients {
		c, err := pgx.Connect(qctx, "postgres://"+pgtest.AppUser+":"+pgtest.AppPassword+"@127.0.0.1:"+strconv.Itoa(port)+"/"+pgtest.AppDB+"?sslmode=disable")
		require.NoError(t, err)
		defer c.Close(context.Background())
		clients[i] = c
	}
	query := func() {
		for i, c := range clients {
			var v int
			require.NoError(t, c.QueryRow(qctx, "SELECT $1::int", i).Scan(&v))
			require.Equal(t, i, v)
		}
	}
	onLoop := func(i int) int { return gauge(`pgmux_loop_clients{loop="` + strconv.Itoa(i) + `"}`) }
	query()
	require.Eventually(t, func() bool { return onLoop(0) == len(clients) }, 5*time.Second, 20*time.Millisecond,
		"every client on the first loop while one processor runs")

	reload := func() {
		qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer qcancel()
		cc, err := pgx.ParseConfig("postgres://admin:" + pgtest.AppPassword + "@127.0.0.1:" + strconv.Itoa(port) + "/pgbouncer?sslmode=disable")
		require.NoError(t, err)
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		adm, err := pgx.ConnectConfig(qctx, cc)
		require.NoError(t, err)
		defer adm.Close(qctx)
		_, err = adm.Exec(qctx, "RELOAD")
		require.NoError(t, err)
	}
	setenv("PGMUX_ADAPTIVE_PROCS", "0")
	reload()
	require.Equal(t, max, gauge("pgmux_procs"), "adaptive_procs off: every processor")
	require.Equal(t, max, runtime.GOMAXPROCS(0))
	if max > 1 {
		require.Contains(t, logs.String(), "adaptive_procs off")
		query()
		require.Eventually(t, func() bool { return onLoop(0) > 0 && onLoop(1) > 0 }, 5*time.Second, 20*time.Millisecond,
			"the clients spread over the loops once every processor runs")
	}

	setenv("PGMUX_ADAPTIVE_PROCS", "1")
	reload()
	require.Eventually(t, func() bool { return gauge("pgmux_procs") == 1 && runtime.GOMAXPROCS(0) == 1 },
		5*time.Second, 20*time.Millisecond, "on again: one processor")
	query()
	require.Eventually(t, func() bool { return onLoop(0) == len(clients) }, 5*time.Second, 20*time.Millisecond,
		"back on the first loop")
}
