package multihost

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestRouting sends each database's transactions where its target_session_attrs says:
// the standby is listed first, so an entry that reaches the primary chose it.
func TestRouting(t *testing.T) {
	p := startPair(t, nil,
		"rw = {hosts} dbname=app target_session_attrs=read-write",
		"prim = {hosts} dbname=app target_session_attrs=primary",
		"sb = {hosts} dbname=app target_session_attrs=standby",
		"ro = {hosts} dbname=app target_session_attrs=read-only",
		"pref = {hosts} dbname=app target_session_attrs=prefer-standby",
		"rr = {hosts} dbname=app",
		"first = {hosts} dbname=app load_balance_hosts=disable",
	)
	for _, tt := range []struct {
		db      string
		standby bool
	}{{"rw", false}, {"prim", false}, {"sb", true}, {"ro", true}, {"pref", true}, {"first", true}} {
		t.Run(tt.db, func(t *testing.T) {
			// Several clients in transactions at once make the pool open several servers.
			ports := concurrentServers(t, p, tt.db, 4)
			want := p.primary.Port
			if tt.standby {
				want = p.standby.Port
			}
			require.Equal(t, map[int]bool{want: true}, ports)
		})
	}
	t.Run("round-robin", func(t *testing.T) {
		ports := concurrentServers(t, p, "rr", 4)
		require.Equal(t, map[int]bool{p.primary.Port: true, p.standby.Port: true}, ports,
			"target_session_attrs=any spreads new connections over both hosts")
	})
}

// concurrentServers holds n transactions open at once on db and returns the ports of
// the servers they ran on.
func concurrentServers(t *testing.T, p *pair, db string, n int) map[int]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var txs []pgx.Tx
	for range n {
		tx, err := p.connect(t, db).Begin(ctx)
		require.NoError(t, err)
		txs = append(txs, tx)
	}
	ports := make(map[int]bool)
	for _, tx := range txs {
		port, standby := server(t, tx)
		require.Equal(t, port == p.standby.Port, standby)
		ports[port] = true
	}
	for _, tx := range txs {
		require.NoError(t, tx.Commit(ctx))
	}
	return ports
}

// TestRoles shows what pgmux knows of each host: SHOW HOSTS, the trailing columns of
// SHOW DATABASES and SHOW SERVERS, and the pgmux_host_* metrics; and that a promotion
// is seen at once (the broken connection to the stopped primary triggers a check) and
// new transactions go to the new primary.
func TestRoles(t *testing.T) {
	p := startPair(t, nil, "rw = {hosts} dbname=app target_session_attrs=read-write")
	c := p.connect(t, "rw")
	port, _ := server(t, c)
	require.Equal(t, p.primary.Port, port)
	adm := p.admin(t)
	var last []map[string]any
	require.Eventually(t, func() bool {
		rows := show(t, adm, "SHOW HOSTS")
		last = rows
		pr, sb := hostRow(rows, p.primary.Port), hostRow(rows, p.standby.Port)
		return pr != nil && sb != nil && pr["role"] == "primary" && sb["role"] == "standby" &&
			pr["state"] == "up" && sb["state"] == "up" && sb["replication_lag_ms"] != nil && sb["replication_lag_bytes"] != nil
	}, 10*time.Second, 20*time.Millisecond, "SHOW HOSTS: %v", &last)
	rows := show(t, adm, "SHOW HOSTS")
	require.Equal(t, "rw", hostRow(rows, p.primary.Port)["databases"])
	require.Equal(t, "::1", hostRow(rows, p.primary.Port)["host"])
	require.Equal(t, int64(0), hostRow(rows, p.primary.Port)["replication_lag_ms"])

	var db map[string]any
	for _, r := range show(t, adm, "SHOW DATABASES") {
		if r["name"] == "rw" {
			db = r
		}
	}
	require.NotNil(t, db)
	require.Equal(t, "read-write", db["target_session_attrs"])
	require.Equal(t, "round-robin", db["load_balance_hosts"])
	require.Contains(t, db["host_roles"], "standby")
	require.Contains(t, db["host_roles"], "[::1]:"+itoa(p.primary.Port)+" primary")
	require.NotNil(t, db["replication_lag_ms"])

	var roles []any
	for _, r := range show(t, adm, "SHOW SERVERS") {
		if r["database"] == "rw" {
			roles = append(roles, r["role"])
		}
	}
	require.Contains(t, roles, "primary")

	v, ok := gauge(t, p.reg, "pgmux_host_primary", map[string]string{"host": "[::1]:" + itoa(p.primary.Port)})
	require.True(t, ok)
	require.Equal(t, 1.0, v)
	v, ok = gauge(t, p.reg, "pgmux_host_primary", map[string]string{"host": "127.0.0.1:" + itoa(p.standby.Port)})
	require.True(t, ok)
	require.Equal(t, 0.0, v)
	v, ok = gauge(t, p.reg, "pgmux_host_up", map[string]string{"host": "127.0.0.1:" + itoa(p.standby.Port)})
	require.True(t, ok)
	require.Equal(t, 1.0, v)
	_, ok = gauge(t, p.reg, "pgmux_host_replication_lag_seconds", map[string]string{"host": "127.0.0.1:" + itoa(p.standby.Port)})
	require.True(t, ok)

	// Failover: the primary stops, the standby is promoted.
	p.primary.StopPostmaster(t, "fast")
	require.Eventually(t, func() bool {
		return hostRow(show(t, adm, "SHOW HOSTS"), p.primary.Port)["state"] == "down"
	}, 5*time.Second, 10*time.Millisecond, "a stopped primary is seen down at once")
	p.standby.Promote(t)
	require.Eventually(t, func() bool {
		return hostRow(show(t, adm, "SHOW HOSTS"), p.standby.Port)["role"] == "primary"
	}, 5*time.Second, 10*time.Millisecond, "the promoted standby is seen as the primary")
	require.Eventually(t, func() bool {
		v, ok := gauge(t, p.reg, "pgmux_host_up", map[string]string{"host": "[::1]:" + itoa(p.primary.Port)})
		return ok && v == 0
	}, 5*time.Second, 10*time.Millisecond)

	c2 := p.connect(t, "rw")
	port, standby := server(t, c2)
	require.Equal(t, p.standby.Port, port, "new transactions go to the new primary")
	require.False(t, standby)
}

// TestAttrsRefuse: a database whose target_session_attrs its server does not fit gets
// the reason at login.
func TestAttrsRefuse(t *testing.T) {
	primary := pgtest.StartPrivate(t)
	m, _ := startMux(t, primary, nil, "sb = host=127.0.0.1 port="+itoa(primary.Port)+" dbname=app target_session_attrs=standby")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := pgx.Connect(ctx, m.URL(pgtest.AppUser, pgtest.AppPassword, "sb"))
	require.ErrorContains(t, err, "server does not match target_session_attrs standby: it is a primary")
}

// TestReloadHosts: RELOAD turns a single-host entry into a multi-host one; the new hosts
// are checked and routed to at once.
func TestReloadHosts(t *testing.T) {
	primary := pgtest.StartPrivate(t)
	standby := primary.StartStandby(t)
	ini := &muxtest.Ini{
		Databases: []string{"app = host=127.0.0.1 port=" + itoa(primary.Port) + " dbname=app"},
		Users:     map[string]string{pgtest.AppUser: pgtest.AppPassword, "admin": "adminpass"},
		Extra:     []string{"admin_users = admin"},
	}
	m := muxtest.Start(t, primary, muxtest.Options{Ini: ini, Reload: true, Stop: muxtest.Close})
	p := &pair{primary: primary, standby: standby, mux: m}
	port, _ := server(t, p.connect(t, "app"))
	require.Equal(t, primary.Port, port)
	adm := p.admin(t)
	require.Empty(t, show(t, adm, "SHOW HOSTS"))

	ini.Databases = []string{"app = host=127.0.0.1,127.0.0.1 port=" + itoa(primary.Port) + "," + itoa(standby.Port) +
		" dbname=app target_session_attrs=standby"}
	ini.Write(t, filepath.Dir(m.Ini), primary, 6432)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := adm.Exec(ctx, "RELOAD")
	require.NoError(t, err)
	port, standbyRole := server(t, p.connect(t, "app"))
	require.Equal(t, standby.Port, port)
	require.True(t, standbyRole)
	require.Eventually(t, func() bool {
		rows := show(t, adm, "SHOW HOSTS")
		pr, sb := hostRow(rows, primary.Port), hostRow(rows, standby.Port)
		return pr != nil && sb != nil && pr["role"] == "primary" && sb["role"] == "standby"
	}, 10*time.Second, 20*time.Millisecond, "the new hosts are checked")
}
