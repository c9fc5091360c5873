package metrics

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// TestLatencyVecAgreesWithClientGolang observes the same durations into latencyVec and
// into client_golang's own histogram with the same buckets: the exported buckets, count
// and sum must agree, so replacing the library's histogram changed no series.
func TestLatencyVecAgreesWithClientGolang(t *testing.T) {
	v := newLatencyVec("query_duration_seconds", "test")
	ref := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pgmux", Subsystem: "pool",
		Name: "query_duration_seconds", Help: "test", Buckets: latencyBuckets}, poolLabels)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []Key{{DB: "app", User: "app"}, {DB: "other", User: "u"}}
	var durations []time.Duration
	for _, s := range latencyBuckets { // every bound itself, and just either side of it
		durations = append(durations, time.Duration(s*1e9)-1, time.Duration(s*1e9), time.Duration(s*1e9)+1)
	}
	for k := range 41 { // (up to 18 minutes) where Observe's scan starts (latencyFrom): each power of two and its neighbours
		durations = append(durations, time.Duration(1)<<k-1, time.Duration(1)<<k, time.Duration(1)<<k+1)
	}
	for range 5000 {
		durations = append(durations, time.Duration(rng.Int64N(int64(90*time.Second))), time.Duration(rng.Int64N(int64(3*time.Millisecond))))
	}
	for i, d := range durations {
		k := keys[i%len(keys)]
		v.of(k).Observe(d)
		ref.WithLabelValues(k.DB, k.User).Observe(d.Seconds())
	}
	got, want := collectHistograms(t, v), collectHistograms(t, ref)
	require.Len(t, got, len(keys))
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, "no histogram for %v", k)
		require.Equal(t, w.GetSampleCount(), g.GetSampleCount(), "%v: count", k)
		require.InDelta(t, w.GetSampleSum(), g.GetSampleSum(), 1e-6*w.GetSampleSum(), "%v: sum", k)
		require.Len(t, g.GetBucket(), len(w.GetBucket()))
		for i, wb := range w.GetBucket() {
			gb := g.GetBucket()[i]
			require.Equal(t, wb.GetUpperBound(), gb.GetUpperBound())
			require.Equal(t, wb.GetCumulativeCount(), gb.GetCumulativeCount(), "%v: le=%v", k, wb.GetUpperBound())
		}
	}
	h := v.of(keys[0])
	require.Zero(t, testing.AllocsPerRun(100, func() { h.Observe(time.Millisecond) }), "an observation allocates nothing")
}

// collectHistograms gathers c's histograms by their label values.
func collectHistograms(t *testing.T, c prometheus.Collector) map[Key]*dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[Key]*dto.Histogram{}
	for _, f := range fams {
		require.Equal(t, dto.MetricType_HISTOGRAM, f.GetType())
		require.Equal(t, "pgmux_pool_query_duration_seconds", f.GetName())
		for _, m := range f.GetMetric() {
			var k Key
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "database":
					k.DB = l.GetValue()
				case "user":
					k.User = l.GetValue()
				}
			}
			out[k] = m.GetHistogram()
		}
	}
	return out
}
