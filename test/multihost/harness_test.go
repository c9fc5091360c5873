// Package multihost tests pgmux in front of a primary and a streaming standby: routing by
// target_session_attrs, what pgmux knows of each host's role, and failover.
package multihost

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { muxtest.Main(m) }

// opTimeout bounds one client operation.
const opTimeout = 30 * time.Second

// pair is a private primary, its standby and pgmux in front of both.
type pair struct {
	primary, standby *pgtest.Server
	mux              *muxtest.Mux
	reg              *prometheus.Registry
}

// startPair starts a primary and a standby and pgmux with one [databases] entry per line
// of dbs, where {hosts} stands for "host=<standby>,<primary> port=<standby>,<primary>":
// the standby is listed first, over IPv4, and the primary over IPv6 (::1).
func startPair(t *testing.T, extra []string, dbs ...string) *pair {
	t.Helper()
	primary := pgtest.StartPrivate(t)
	standby := primary.StartStandby(t)
	hosts := fmt.Sprintf("host=127.0.0.1,[::1] port=%d,%d", standby.Port, primary.Port)
	var lines []string
	for _, d := range dbs {
		lines = append(lines, strings.ReplaceAll(d, "{hosts}", hosts))
	}
	m, reg := startMux(t, primary, extra, lines...)
	return &pair{primary: primary, standby: standby, mux: m, reg: reg}
}

// startMux serves pgmux with the given [databases] lines and extra [pgbouncer] lines,
// users app and admin (the console), server_login_retry 0.2 s.
func startMux(t *testing.T, pg *pgtest.Server, extra []string, dbs ...string) (*muxtest.Mux, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ini := &muxtest.Ini{
		Databases: dbs,
		Users:     map[string]string{pgtest.AppUser: pgtest.AppPassword, "admin": "adminpass"},
		Extra:     append([]string{"admin_users = admin", "server_login_retry = 0.2"}, extra...),
	}
	return muxtest.Start(t, pg, muxtest.Options{Ini: ini, Registry: reg, Stop: muxtest.Close}), reg
}

func itoa(n int) string { return strconv.Itoa(n) }

func (p *pair) connect(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	return p.mux.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
}

// admin opens the console.
func (p *pair) admin(t *testing.T) *pgx.Conn {
	t.Helper()
	return p.mux.Console(t, "admin", "adminpass")
}

// show runs a console SHOW and returns its rows keyed by column, NULL as nil.
func show(t *testing.T, adm *pgx.Conn, cmd string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rows, err := adm.Query(ctx, cmd)
	require.NoError(t, err)
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		row := make(map[string]any)
		for i, fd := range rows.FieldDescriptions() {
			row[fd.Name] = vals[i]
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}

// where is SHOW HOSTS' row for a port.
func hostRow(rows []map[string]any, port int) map[string]any {
	for _, r := range rows {
		if fmt.Sprint(r["port"]) == fmt.Sprint(port) {
			return r
		}
	}
	return nil
}

// server tells where a query ran: the server's port and whether it is a standby.
func server(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (port int, standby bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	require.NoError(t, q.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&port, &standby))
	return port, standby
}

// gauge returns a metric's value for a label set, and whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	ms := series(t, reg, name, labels)
	if len(ms) == 0 {
		return 0, false
	}
	return ms[0].GetGauge().GetValue(), true
}

// series returns a metric's series whose labels include labels.
func series(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}
