package sticky

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// poolRow returns SHOW POOLS' row for db's app pool.
func poolRow(t testing.TB, adm *pgx.Conn, db string) map[string]any {
	t.Helper()
	rows, err := adm.Query(ctxT(t), "SHOW POOLS")
	require.NoError(t, err)
	defer rows.Close()
	var out map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		r := make(map[string]any, len(vals))
		for i, fd := range rows.FieldDescriptions() {
			r[fd.Name] = vals[i]
		}
		if r["database"] == db && r["user"] == pgtest.AppUser {
			out = r
		}
	}
	require.NoError(t, rows.Err())
	require.NotNil(t, out, "no SHOW POOLS row for %s", db)
	return out
}

// waitingClients returns the SHOW CLIENTS rows of db in state waiting.
func waitingClients(t testing.TB, adm *pgx.Conn, db string) []clientRow {
	t.Helper()
	_, rows := showClients(t, adm)
	var out []clientRow
	for _, r := range rows {
		if r["database"] == db && r["state"] == "waiting" {
			out = append(out, r)
		}
	}
	return out
}

// gaugeOf reads a gauge of db's app pool from the registry.
func (m *mux) gaugeOf(t testing.TB, name, db string) float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["database"] == db && labels["user"] == pgtest.AppUser {
				return mt.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// warnings returns pgmux's warn lines whose message starts with msg.
func (m *mux) warnings(t testing.TB, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(m.LogPath)
	require.NoError(t, err)
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["level"] == "warn" && strings.HasPrefix(e["msg"].(string), msg) {
			out = append(out, e)
		}
	}
	return out
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 20*time.Millisecond, what)
}

// execAsync runs sql on conn in the background; the channel gets its error.
func execAsync(conn *pgx.Conn, sql string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_, err := conn.Exec(ctx, sql)
		done <- err
	}()
	return done
}

// TestDirectWaitVisible: with direct_pool_size 1, a second client that takes an advisory
// lock waits for the direct slot. Meanwhile it counts in SHOW POOLS' cl_waiting (with its
// wait in maxwait), SHOW CLIENTS lists it as waiting, pgmux_pool_clients_waiting_direct
// counts it, and one warning names the pin reason and direct_pool_size; a second wait
// within the minute is not logged again.
func TestDirectWaitVisible(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, directSize: 1, waitTimeout: 20})
	db := m.pg.NewDatabase(t, "directwait")
	adm := m.admin(t)
	a, b := m.connect(t, db), m.connect(t, db)
	_, err := a.Exec(ctxT(t), "SELECT pg_advisory_lock(1)")
	require.NoError(t, err)

	got := execAsync(b, "SELECT pg_advisory_lock(2)")
	eventually(t, "the client waiting for a direct slot never showed in SHOW POOLS", func() bool {
		r := poolRow(t, adm, db)
		return toInt(r["cl_waiting"]) == 1 && toInt(r["maxwait"])*1e6+toInt(r["maxwait_us"]) > 0
	})
	waiting := waitingClients(t, adm, db)
	require.Len(t, waiting, 1)
	require.Equal(t, int64(localPort(b)), toInt(waiting[0]["port"]))
	require.Equal(t, 1.0, m.gaugeOf(t, "pgmux_pool_clients_waiting_direct", db))
	require.Positive(t, m.gaugeOf(t, "pgmux_pool_max_wait_seconds", db))
	warned := m.warnings(t, "client waits for a direct connection")
	require.Len(t, warned, 1)
	require.Equal(t, "advisory_lock", warned[0]["reason"])
	require.EqualValues(t, 1, warned[0]["direct_pool_size"])
	require.Contains(t, warned[0]["hint"], "direct_pool_size")

	_, err = a.Exec(ctxT(t), "SELECT pg_advisory_unlock_all()")
	require.NoError(t, err)
	require.NoError(t, <-got)
	eventually(t, "the served client still counts as waiting", func() bool {
		return toInt(poolRow(t, adm, db)["cl_waiting"]) == 0
	})
	require.Zero(t, m.gaugeOf(t, "pgmux_pool_clients_waiting_direct", db))

	// Now a waits for the slot b holds: visible again, but not logged again this minute.
	got = execAsync(a, "SELECT pg_advisory_lock(1)")
	eventually(t, "the second direct waiter never showed", func() bool {
		return len(waitingClients(t, adm, db)) == 1
	})
	_, err = b.Exec(ctxT(t), "SELECT pg_advisory_unlock_all()")
	require.NoError(t, err)
	require.NoError(t, <-got)
	require.Len(t, m.warnings(t, "client waits for a direct connection"), 1, "one warning per pool per minute")
}

// TestPausedClientsVisible: while the database is PAUSEd, a logged-in client's query and a
// new client's login wait; both count in SHOW POOLS' cl_waiting and maxwait and are listed
// as waiting in SHOW CLIENTS, and both go on after RESUME.
func TestPausedClientsVisible(t *testing.T) {
	m := startMux(t, setup{})
	db := m.pg.NewDatabase(t, "pausewait")
	adm := m.admin(t)
	c := m.connect(t, db)
	_, err := c.Exec(ctxT(t), "SELECT 1")
	require.NoError(t, err)
	_, err = adm.Exec(ctxT(t), "PAUSE "+db)
	require.NoError(t, err)
	resumed := false
	defer func() {
		if !resumed {
			_, _ = adm.Exec(context.Background(), "RESUME "+db)
		}
	}()

	query := execAsync(c, "SELECT 1")
	login := make(chan error, 1)
	go func() {
		conn, err := muxtest.TryConnect(m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
		if err == nil {
			_, err = conn.Exec(context.Background(), "SELECT 1")
			muxtest.CloseConn(conn)
		}
		login <- err
	}()
	eventually(t, "the paused clients never showed in SHOW POOLS", func() bool {
		r := poolRow(t, adm, db)
		return toInt(r["cl_waiting"]) == 2 && toInt(r["maxwait"])*1e6+toInt(r["maxwait_us"]) > 0
	})
	waiting := waitingClients(t, adm, db)
	require.Len(t, waiting, 2, "SHOW CLIENTS lists the query and the login held by PAUSE")
	for _, w := range waiting {
		require.Equal(t, pgtest.AppUser, w["user"])
		require.Positive(t, toInt(w["wait"])*1e6+toInt(w["wait_us"]))
	}

	_, err = adm.Exec(ctxT(t), "RESUME "+db)
	require.NoError(t, err)
	resumed = true
	require.NoError(t, <-query)
	require.NoError(t, <-login)
	require.Zero(t, toInt(poolRow(t, adm, db)["cl_waiting"]))
}
