package main

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Hist is a log-linear latency histogram in microseconds: values below 64 µs are exact,
// larger ones fall in one of 32 buckets per power of two (a bucket is at most 1/32 = 3% of
// its value wide). The zero Hist is empty and ready; it is not safe for concurrent use.
type Hist struct {
	counts   [histBuckets]uint64
	n        uint64
	sum, max uint64 // µs
}

const (
	histSubBits  = 5                                      // 32 buckets per power of two
	histLinear   = 2 << histSubBits                       // 64 exact one-µs buckets
	histMaxShift = 35                                     // the largest value kept is below 2^41 µs (25 days)
	histBuckets  = histLinear + histMaxShift<<histSubBits // 1184
)

// bucketOf returns the bucket of a value in µs.
func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1 // us>>shift is in [32, 64)
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histLinear + (shift-1)<<histSubBits + int(us>>shift) - histLinear/2
}

// bucketRange returns the lowest value of bucket b and its width, in µs.
func bucketRange(b int) (low, width uint64) {
	if b < histLinear {
		return uint64(b), 1
	}
	shift := (b-histLinear)>>histSubBits + 1
	top := uint64((b-histLinear)&(1<<histSubBits-1)) + histLinear/2
	return top << shift, 1 << shift
}

// Add records one duration; negative ones count as zero.
func (h *Hist) Add(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[bucketOf(us)]++
	h.n++
	h.sum += us
	h.max = max(h.max, us)
}

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest value recorded.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average of the values recorded, 0 when there are none.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}

// Quantile returns the value below or at which a fraction q (0..1) of the values lie: the
// middle of the bucket holding the value of rank ceil(q*n), never more than Max. It is 0
// for an empty histogram.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(b)
			return time.Duration(min(low+width/2, h.max)) * time.Microsecond
		}
	}
	return h.Max()
}

// ms converts a duration to float milliseconds for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// statShards spreads latency recording over independent locks so thousands of clients do
// not queue on one mutex.
const statShards = 32

// Stats collects what a run's clients did: transactions, latencies, errors by kind and
// wrong results. Safe for concurrent use.
type Stats struct {
	shards [statShards]struct {
		mu sync.Mutex
		h  Hist
	}
	tx, wrong atomic.Int64

	mu      sync.Mutex
	errs    map[string]int64
	samples []string // the first messages of errors and wrong results, for the summary
}

// maxSamples is how many error and wrong-result messages a run keeps.
const maxSamples = 10

// NewStats returns empty Stats.
func NewStats() *Stats { return &Stats{errs: map[string]int64{}} }

// Done counts one transaction of the given client that took d.
func (s *Stats) Done(client int, d time.Duration) {
	s.tx.Add(1)
	s.Latency(client, d)
}

// Latency records d for the given client without counting a transaction.
func (s *Stats) Latency(client int, d time.Duration) {
	sh := &s.shards[uint(client)%statShards]
	sh.mu.Lock()
	sh.h.Add(d)
	sh.mu.Unlock()
}

// Error counts err under its kind (see ErrorKind), prefixed by step when not empty.
func (s *Stats) Error(step string, err error) {
	kind := ErrorKind(err)
	if step != "" {
		kind = step + " " + kind
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errs[kind] == 0 {
		s.sample(kind + ": " + err.Error())
	}
	s.errs[kind]++
}

// Wrong counts a wrong result and keeps msg when it is among the first few.
func (s *Stats) Wrong(msg string) {
	s.wrong.Add(1)
	s.mu.Lock()
	s.sample("wrong: " + msg)
	s.mu.Unlock()
}

// sample keeps msg among the first maxSamples; s.mu is held.
func (s *Stats) sample(msg string) {
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, msg)
	}
}

// Snapshot returns the latencies merged, errors by kind and the kept messages.
func (s *Stats) Snapshot() (Hist, map[string]int64, []string) {
	var h Hist
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.Merge(&sh.h)
		sh.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := make(map[string]int64, len(s.errs))
	for k, v := range s.errs {
		errs[k] = v
	}
	return h, errs, append([]string(nil), s.samples...)
}

// ErrorKind names an error for counting: the SQLSTATE of a PostgreSQL error, else a short
// class of client-side failure.
func ErrorKind(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ne net.Error
	msg := err.Error()
	for _, c := range []struct{ substr, kind string }{
		{"connection refused", "connection refused"},
		{"connection reset", "connection reset"},
		{"broken pipe", "broken pipe"},
		{"EOF", "connection closed"},
		{"conn closed", "connection closed"},
		{"closed network connection", "connection closed"},
	} {
		if strings.Contains(msg, c.substr) {
			return c.kind
		}
	}
	if errors.As(err, &ne) {
		return "network"
	}
	return "client"
}
