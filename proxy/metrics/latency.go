package metrics

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyVec is a Prometheus histogram family over latencyBuckets, one histogram per pool,
// built for the relay's hot path: an observation is a duration in nanoseconds, a short
// scan over integer bounds and two atomic adds (client_golang's Histogram.Observe spent
// ~135 instructions on a float binary search, a CAS loop for the float sum and its
// hot/cold bookkeeping, three times per transaction). A scrape exports the same series as
// a HistogramVec with labels database and user would: _bucket{le}, _sum in seconds,
// _count. The count is the buckets' total, so a scrape is always consistent in itself;
// its sum may miss observations made during the scrape (they show in the next one).
//
// Owners: byKey is guarded by mu (sessions resolve their pool's histogram once, the
// scrape lists them); a Hist, once made, is written by any session goroutine and
// server reader through its atomics alone and read by the scrape.
type latencyVec struct {
	desc *prometheus.Desc
	mu   sync.Mutex // guards byKey; observations take no lock
	// byKey holds every pool's histogram once made: like a HistogramVec's children they
	// stay for the life of the process, so the counters never go down.
	byKey map[Key]*Hist
}

// Hist is one pool's histogram. Shared by every session of the pool (any
// goroutine observes, through atomics only) and the scrape (reads only).
type Hist struct {
	counts [len(latencyBoundsNs) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNs  atomic.Int64
}

// latencyBoundsNs are latencyBuckets in nanoseconds.
var latencyBoundsNs = func() (b [18]int64) {
	if len(latencyBuckets) != len(b) {
		panic("latencyBoundsNs: latencyBuckets changed length")
	}
	for i, s := range latencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

func newLatencyVec(name, help string) *latencyVec {
	return &latencyVec{
		desc:  prometheus.NewDesc(prometheus.BuildFQName("pgmux", "pool", name), help, poolLabels, nil),
		byKey: map[Key]*Hist{},
	}
}

// of returns pool k's histogram, made on first use.
func (v *latencyVec) of(k Key) *Hist {
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.byKey[k]
	if h == nil {
		h = &Hist{}
		v.byKey[k] = h
	}
	return h
}

// latencyFrom[k] is the first bucket whose bound is at least 1<<(k-1): a duration of k
// significant bits exceeds every bound before it. The bounds grow by at least twice from
// one to the next, so Observe's scan from there compares once or twice, not up to the
// bucket's index (five to seven times for the millisecond latencies of a busy pool, three
// observations a transaction).
var latencyFrom = func() (f [65]uint8) {
	for k := 1; k < len(f); k++ {
		floor := uint64(1) << (k - 1)
		i := 0
		for i < len(latencyBoundsNs) && uint64(latencyBoundsNs[i]) < floor {
			i++
		}
		f[k] = uint8(i)
	}
	return f
}()

// Observe records d. A bucket counts the observations at most its bound (le), as
// Prometheus's do.
func (h *Hist) Observe(d time.Duration) {
	ns := int64(d)
	i := 0
	if ns > 0 {
		i = int(latencyFrom[bits.Len64(uint64(ns))])
	}
	for i < len(latencyBoundsNs) && ns > latencyBoundsNs[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(ns)
}

// Describe implements prometheus.Collector.
func (v *latencyVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector: one constant histogram per pool.
func (v *latencyVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	keys := make([]Key, 0, len(v.byKey))
	hists := make([]*Hist, 0, len(v.byKey))
	for k, h := range v.byKey {
		keys = append(keys, k)
		hists = append(hists, h)
	}
	v.mu.Unlock()
	for i, h := range hists {
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var n uint64
		for j, le := range latencyBuckets {
			n += h.counts[j].Load()
			buckets[le] = n
		}
		n += h.counts[len(latencyBuckets)].Load()
		sum := float64(h.sumNs.Load()) / 1e9
		ch <- prometheus.MustNewConstHistogram(v.desc, n, sum, buckets, keys[i].DB, keys[i].User)
	}
}

// HistogramFamily marks the collector as a histogram family for tools that classify
// collectors (the dashboard test).
func (v *latencyVec) HistogramFamily() {}
