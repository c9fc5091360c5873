package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestListenList: PGMUX_LISTEN names several addresses ("127.0.0.1:P,[::1]:P", a dev
// sidecar on both loopbacks); pgmux serves clients on each, and SHOW CONFIG shows
// listen_addr as the list and listen_port. A RELOAD with another PGMUX_LISTEN changes
// neither (listen_addr needs a restart, as in PgBouncer): SHOW CONFIG keeps the values in
// force, the log says the change waits for a restart, and both addresses still serve.
// Before, a list was refused: "127.0.0.1:P,[::1]:P" is not host:port.
func TestListenList(t *testing.T) {
	pg := pgtest.Start(t)
	port := freePort(t)
	v6 := true
	if ln, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(port)); err != nil {
		v6 = false // no IPv6 here: pgmux serves 127.0.0.1 and warns about ::1
	} else {
		ln.Close()
	}
	env, setenv := mutableEnv(map[string]string{"PGMUX_LISTEN": "127.0.0.1:" + strconv.Itoa(port) + ",[::1]:" + strconv.Itoa(port),
		"PGMUX_ADMIN_USERS": "admin"})
	t.Setenv("PGPORT", "")
	logs := startRun(t, []string{"--upstream", pg.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB),
		"--metrics-addr", ""}, env)

	qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer qcancel()
	hosts := []string{"127.0.0.1"}
	if v6 {
		hosts = append(hosts, "[::1]")
	}
	connect := func(host, user, db string) *pgx.Conn {
		cc, err := pgx.ParseConfig("postgres://" + user + ":" + pgtest.AppPassword + "@" + host + ":" +
			strconv.Itoa(port) + "/" + db + "?sslmode=disable")
		require.NoError(t, err)
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		conn, err := pgx.ConnectConfig(qctx, cc)
		require.NoError(t, err, host)
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
	serves := func() {
		for _, h := range hosts {
			var one int
			require.NoError(t, connect(h, pgtest.AppUser, pgtest.AppDB).QueryRow(qctx, "SELECT 1").Scan(&one), h)
		}
	}
	adm := connect("127.0.0.1", "admin", "pgbouncer")
	showConfig := func() map[string]string {
		rows, err := adm.Query(qctx, "SHOW CONFIG")
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			if k := vals[0].(string); k == "listen_addr" || k == "listen_port" {
				out[k] = vals[1].(string)
			}
		}
		require.NoError(t, rows.Err())
		return out
	}
	want := map[string]string{"listen_addr": "127.0.0.1,::1", "listen_port": strconv.Itoa(port)}
	serves()
	require.Equal(t, want, showConfig())

	setenv("PGMUX_LISTEN", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	_, err := adm.Exec(qctx, "RELOAD")
	require.NoError(t, err)
	require.Equal(t, want, showConfig(), "listen_addr and listen_port keep the values in force")
	for _, k := range []string{"listen_addr", "listen_port"} {
		require.Contains(t, logs.String(), `[pgbouncer] `+k+` changed`)
	}
	require.Contains(t, logs.String(), "setting needs a restart to take effect")
	serves()
}
