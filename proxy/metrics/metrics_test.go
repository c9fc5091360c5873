package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// fakeSource is a Source with fixed figures.
type fakeSource struct {
	pools    []Pool
	pinned   []Pinned
	hosts    []pool.HostState
	prepared []Prepared
}

func (f *fakeSource) ClientsConnected() int   { return 7 }
func (f *fakeSource) Pools() []Pool           { return f.pools }
func (f *fakeSource) Pinned() []Pinned        { return f.pinned }
func (f *fakeSource) Hosts() []pool.HostState { return f.hosts }
func (f *fakeSource) Prepared() []Prepared    { return f.prepared }

// TestCollectFromSource: a scrape reports the Source's figures under the names and labels
// the dashboard and PgBouncer-minded alerts use: a removed pool keeps its clients and
// totals but has no server series; every pin reason is there, zeros included; a server
// named by two databases is reported once; unknown roles and lags are left out.
func TestCollectFromSource(t *testing.T) {
	primary, standby := pool.Endpoint{Host: "10.0.0.1", Port: 5432}, pool.Endpoint{Host: "fd00::2", Port: 5433}
	src := &fakeSource{
		pools: []Pool{
			{Key: Key{"app", "u"}, Linked: 3, Idle: 5, Waiting: 2, WaitingDirect: 1, MaxWait: 1500 * time.Millisecond,
				Servers: &pool.Stats{Active: 3, Idle: 1, Tested: 1, Login: 0, Paused: true, Connects: 9, ConnectFailures: 2},
				Xacts:   100, Queries: 150, Received: 1000, Sent: 2000, Assignments: 90},
			{Key: Key{"gone", "u"}, Idle: 1, Xacts: 4},
		},
		pinned: []Pinned{{Key: Key{"app", "u"}, Reasons: []Count{{"advisory_lock", 2}, {"listen", 0}}}},
		hosts: []pool.HostState{
			{Endpoint: primary, Role: pool.RolePrimary, Up: true, LagMs: 0, LagBytes: -1},
			{Endpoint: standby, Role: pool.RoleStandby, Down: true, LagMs: 1500, LagBytes: 4096},
			{Endpoint: primary, Role: pool.RoleStandby, Down: true, LagMs: 9, LagBytes: 9},   // again, for another database
			{Endpoint: pool.Endpoint{Host: "10.0.0.3", Port: 5432}, LagMs: -1, LagBytes: -1}, // never reached
		},
		prepared: []Prepared{{Key: Key{"app", "u"}, Prepared: 12, Hits: 30, Misses: 4, Evictions: 1, Retries: 2,
			UnnamedHits: 5, UnnamedMisses: 6}},
	}
	got := scrape(t, New(src))
	for series, v := range map[string]float64{
		`pgmux_clients_connected`:                                              7,
		`pgmux_host_primary{host="10.0.0.1:5432"}`:                             1,
		`pgmux_host_primary{host="[fd00::2]:5433"}`:                            0,
		`pgmux_host_replication_lag_bytes{host="[fd00::2]:5433"}`:              4096,
		`pgmux_host_replication_lag_seconds{host="10.0.0.1:5432"}`:             0,
		`pgmux_host_replication_lag_seconds{host="[fd00::2]:5433"}`:            1.5,
		`pgmux_host_up{host="10.0.0.1:5432"}`:                                  1,
		`pgmux_host_up{host="[fd00::2]:5433"}`:                                 0,
		`pgmux_pool_clients{database="app",state="linked",user="u"}`:           3,
		`pgmux_pool_clients{database="app",state="idle",user="u"}`:             5,
		`pgmux_pool_clients{database="app",state="waiting",user="u"}`:          2,
		`pgmux_pool_clients_waiting_direct{database="app",user="u"}`:           1,
		`pgmux_pool_clients{database="gone",state="idle",user="u"}`:            1,
		`pgmux_pool_clients{database="gone",state="linked",user="u"}`:          0,
		`pgmux_pool_max_wait_seconds{database="app",user="u"}`:                 1.5,
		`pgmux_pool_paused{database="app",user="u"}`:                           1,
		`pgmux_pool_server_connect_attempts_total{database="app",user="u"}`:    11,
		`pgmux_pool_server_connect_failures_total{database="app",user="u"}`:    2,
		`pgmux_pool_servers{database="app",state="active",user="u"}`:           3,
		`pgmux_pool_servers{database="app",state="idle",user="u"}`:             1,
		`pgmux_pool_servers{database="app",state="login",user="u"}`:            0,
		`pgmux_pool_servers{database="app",state="tested",user="u"}`:           1,
		`pgmux_pool_transactions_total{database="app",user="u"}`:               100,
		`pgmux_pool_transactions_total{database="gone",user="u"}`:              4,
		`pgmux_pool_queries_total{database="app",user="u"}`:                    150,
		`pgmux_pool_received_bytes_total{database="app",user="u"}`:             1000,
		`pgmux_pool_sent_bytes_total{database="app",user="u"}`:                 2000,
		`pgmux_pool_server_assignments_total{database="app",user="u"}`:         90,
		`pgmux_pinned_clients{database="app",reason="advisory_lock",user="u"}`: 2,
		`pgmux_pinned_clients{database="app",reason="listen",user="u"}`:        0,
		`pgmux_prepared_statements{database="app",user="u"}`:                   12,
		`pgmux_prepared_cache_hits_total{database="app",user="u"}`:             30,
		`pgmux_prepared_cache_misses_total{database="app",user="u"}`:           4,
		`pgmux_prepared_cache_evictions_total{database="app",user="u"}`:        1,
		`pgmux_prepared_retries_total{database="app",user="u"}`:                2,
		`pgmux_prepared_unnamed_hits_total{database="app",user="u"}`:           5,
		`pgmux_prepared_unnamed_misses_total{database="app",user="u"}`:         6,
	} {
		g, ok := got[series]
		require.True(t, ok, "no series %s", series)
		require.InDelta(t, v, g, 1e-9, series)
	}
	for series := range got {
		require.False(t, strings.Contains(series, `database="gone"`) &&
			(strings.HasPrefix(series, "pgmux_pool_servers") || strings.HasPrefix(series, "pgmux_pool_paused")),
			"a removed pool has no server figures: %s", series)
		require.False(t, strings.Contains(series, "10.0.0.3"), "a host never reached: %s", series)
	}
	require.Len(t, got, 43, "every series of the scrape, and no other")
}

// scrape gathers c from a pedantic registry (which checks names, help and label
// consistency) as series written name{label="value",...}, labels sorted, to values.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			_, dup := out[name]
			require.False(t, dup, "series %s twice", name)
			out[name] = v
		}
	}
	return out
}

// TestCountersByReason: refused logins and errors sent are counted by reason and by
// SQLSTATE class; reloads by result; listener gaps by database; the histograms register
// with the rest.
func TestCountersByReason(t *testing.T) {
	m := New(&fakeSource{})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, m.Register(reg))
	count := func(name string) map[string]float64 {
		fams, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				key := ""
				for _, l := range m.GetLabel() {
					key += l.GetValue()
				}
				out[key] = m.GetCounter().GetValue()
				if h := m.GetHistogram(); h != nil {
					out[key] = float64(h.GetSampleCount())
				}
			}
		}
		return out
	}
	for code, reason := range map[string]string{
		pgerr.InvalidPassword: "password", pgerr.InsufficientPrivilege: "not_allowed",
		pgerr.InvalidCatalogName: "unknown_database", pgerr.TooManyConnections: "too_many_connections",
		pgerr.CannotConnectNow: "unavailable", pgerr.ProtocolViolation: "protocol", "XX000": "other",
	} {
		m.LoginFailed(code)
		require.InDelta(t, 1, count("pgmux_client_login_failures_total")[reason], 0, code)
	}
	m.ServerLoginFailed(pgerr.ProtocolViolation)
	require.InDelta(t, 1, count("pgmux_client_login_failures_total")["server_login"], 0, "pgmux's own server login")
	require.InDelta(t, 1, count("pgmux_client_login_failures_total")["protocol"], 0, "not counted as protocol")
	m.ErrorSent("")
	require.Equal(t, map[string]float64{"XX": 2, "28": 1, "42": 1, "3D": 1, "53": 1, "57": 1, "08": 2},
		count("pgmux_errors_sent_total"), "by SQLSTATE class; XX000 and a code-less error are XX")
	m.Reloaded(nil)
	m.Reloaded(errors.New("bad ini"))
	m.Reloaded(nil)
	require.Equal(t, map[string]float64{"success": 2, "failure": 1}, count("pgmux_reloads_total"))
	m.ListenerGap("app")
	m.ListenerGap("app")
	m.ListenerGap("jobs")
	require.Equal(t, map[string]float64{"app": 2, "jobs": 1}, count("pgmux_listener_gaps_total"))

	obs := m.Observers(Key{"app", "u"})
	require.Same(t, obs.Query, m.Observers(Key{"app", "u"}).Query, "one histogram per pool")
	obs.Query.Observe(3 * time.Millisecond)
	obs.Query.Observe(time.Second)
	require.Equal(t, map[string]float64{"appu": 2}, count("pgmux_pool_query_duration_seconds"))
}
