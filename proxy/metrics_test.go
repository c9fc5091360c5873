package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// family finds a gathered metric family by name.
func family(fams []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

// poolMetric returns the metric of family name for the app pool.
func poolMetric(t *testing.T, fams []*dto.MetricFamily, name string) *dto.Metric {
	t.Helper()
	f := family(fams, name)
	require.NotNil(t, f, "metric %s missing", name)
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["database"] == "app" && labels["user"] == "app" {
			return m
		}
	}
	t.Fatalf("metric %s has no series for pool app/app", name)
	return nil
}

func TestMetrics(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	base := "http://" + h.srv.MetricsAddr().String()

	code, body := httpGet(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = httpGet(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	// A small load: a few clients, autocommit queries and transactions, one error.
	const clients, perClient = 4, 20
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		// Simple protocol: this test is about the counters, not statement handling.
		conn := h.connect(t, "app", "app", true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perClient; j++ {
				var v int
				if err := conn.QueryRow(context.Background(), "SELECT $1::int", j).Scan(&v); err != nil {
					t.Error(err)
					return
				}
			}
			_, _ = conn.Exec(context.Background(), "SELECT 1/0")
		}()
	}
	wg.Wait()

	fams, err := h.reg.Gather()
	require.NoError(t, err)
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_queries_total").GetCounter().GetValue(), float64(clients*perClient))
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_transactions_total").GetCounter().GetValue(), float64(clients*perClient))
	require.Positive(t, poolMetric(t, fams, "pgmux_pool_received_bytes_total").GetCounter().GetValue())
	require.Positive(t, poolMetric(t, fams, "pgmux_pool_sent_bytes_total").GetCounter().GetValue())
	require.Positive(t, poolMetric(t, fams, "pgmux_pool_server_connect_attempts_total").GetCounter().GetValue())
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_query_duration_seconds").GetHistogram().GetSampleCount(), uint64(clients*perClient))
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_transaction_duration_seconds").GetHistogram().GetSampleCount(), uint64(clients*perClient))
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_wait_duration_seconds").GetHistogram().GetSampleCount(), uint64(clients))
	// Simple protocol prepares nothing: the statement cache series exist, at zero.
	require.Zero(t, poolMetric(t, fams, "pgmux_prepared_statements").GetGauge().GetValue())
	require.Zero(t, poolMetric(t, fams, "pgmux_prepared_cache_hits_total").GetCounter().GetValue())
	require.NotNil(t, poolMetric(t, fams, "pgmux_prepared_cache_misses_total").GetCounter())
	require.NotNil(t, poolMetric(t, fams, "pgmux_prepared_cache_evictions_total").GetCounter())
	require.Positive(t, poolMetric(t, fams, "pgmux_pool_query_duration_seconds").GetHistogram().GetSampleSum())
	// A client has its ReadyForQuery before its session lets go of the server and turns
	// idle (the answer is relayed first, not to delay it): under load a scrape right after
	// the answers can still see a client active.
	idleClients := func() float64 {
		fams, err := h.reg.Gather()
		require.NoError(t, err)
		for _, m := range family(fams, "pgmux_pool_clients").GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == "idle" {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return idleClients() == clients }, 5*time.Second, 5*time.Millisecond,
		"pgmux_pool_clients{state=idle} should count the %d clients", clients)
	errs := family(fams, "pgmux_errors_sent_total")
	require.NotNil(t, errs)
	require.Equal(t, "class", errs.GetMetric()[0].GetLabel()[0].GetName())
	require.Equal(t, "22", errs.GetMetric()[0].GetLabel()[0].GetValue()) // division_by_zero

	// A refused login is counted by reason; counters only move forward after clients leave.
	_, err = h.tryConnect("app", "pgbouncer", true)
	require.Error(t, err)
	before := poolMetric(t, fams, "pgmux_pool_queries_total").GetCounter().GetValue()
	for _, c := range h.connectAllClose(t) {
		_ = c
	}
	fams, err = h.reg.Gather()
	require.NoError(t, err)
	require.GreaterOrEqual(t, poolMetric(t, fams, "pgmux_pool_queries_total").GetCounter().GetValue(), before)
	lf := family(fams, "pgmux_client_login_failures_total")
	require.NotNil(t, lf)
	require.Equal(t, "not_allowed", lf.GetMetric()[0].GetLabel()[0].GetValue())

	// The scrape endpoint serves the same, and the metrics pass promlint.
	code, body = httpGet(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `pgmux_pool_queries_total{database="app",user="app"}`)
	require.Contains(t, body, `pgmux_pool_query_duration_seconds_bucket{database="app",user="app",le="0.001"}`)
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
}

// connectAllClose opens and closes a few clients so their counters are retired.
func (h *harness) connectAllClose(t *testing.T) []struct{} {
	t.Helper()
	for i := 0; i < 3; i++ {
		c, err := h.tryConnect("app", "app", false)
		require.NoError(t, err)
		_, err = c.Exec(context.Background(), "SELECT 1")
		require.NoError(t, err)
		require.NoError(t, c.Close(context.Background()))
	}
	return nil
}

// TestReadyzUnreachable: a configured database nobody can reach makes /readyz 503.
func TestReadyzUnreachable(t *testing.T) {
	port := refusedPort(t) // nothing listens there, nor can
	h := startProxy(t, harnessOpts{dbs: map[string]string{"gone": "host=127.0.0.1 port=" + strconv.Itoa(port)}})
	code, body := httpGet(t, "http://"+h.srv.MetricsAddr().String()+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "database gone")
	code, _ = httpGet(t, "http://"+h.srv.MetricsAddr().String()+"/healthz")
	require.Equal(t, http.StatusOK, code)

	// Once a client has found the server down, its pool waits out server_login_retry; the
	// probe reports that failure at once instead of queueing behind it until its own
	// deadline (readyTimeout, 2 s), which health checkers with a 2 s timeout (fly.toml,
	// pgmux -healthcheck) would see as a timeout, not as the 503 and its reason.
	_, err := h.tryConnect("app", "gone", true)
	require.Error(t, err)
	start := time.Now()
	code, body = httpGet(t, "http://"+h.srv.MetricsAddr().String()+"/readyz")
	took := time.Since(start)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "connection refused")
	require.Less(t, took, time.Second, "/readyz waited out its deadline behind server_login_retry")
}
