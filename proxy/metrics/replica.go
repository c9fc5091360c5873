package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replicaMetrics count what reads on standbys did (replica.go), per database.
type replicaMetrics struct {
	reads, retries *prometheus.CounterVec
	primary        *prometheus.CounterVec
	rywWaits       *prometheus.CounterVec
	positions      *prometheus.CounterVec
	rywWait        *prometheus.HistogramVec
}

func newReplicaMetrics() *replicaMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgmux", Subsystem: "replica", Name: name, Help: help}, labels)
	}
	return &replicaMetrics{
		reads: counter("reads_total", "Requests or read-only transactions linked to a standby (replica_reads).", "database"),
		retries: counter("retries_total", "Reads a standby refused as writes (25006) before anything reached the client, "+
			"sent to the primary instead.", "database"),
		primary: counter("primary_reads_total", "Reads that could have gone to a standby and went to the primary, by reason: "+
			"no_standby (none reachable within replica_max_lag), ryw_timeout (no standby replayed the client's last commit "+
			"within replica_max_wait), lsn_unknown (the primary's position could not be read), standby_unavailable "+
			"(no standby connection to be had).", "database", "reason"),
		rywWaits: counter("ryw_waits_total", "Reads that waited for a standby to replay the client's last commit, by result "+
			"(replayed or timeout).", "database", "result"),
		positions: counter("ryw_positions_total", "Primary WAL positions learned for read-your-writes, by source: check "+
			"(the hosts' checker read it after the client's commit: no round trip) or read (pgmux asked the primary, "+
			"one query shared by the clients asking at the time).", "database", "source"),
		rywWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "pgmux", Subsystem: "replica",
			Name: "ryw_wait_seconds", Help: "How long reads waited for a standby to replay the client's last commit.",
			Buckets: latencyBuckets}, []string{"database"}),
	}
}

func (r *replicaMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.reads, r.retries, r.primary, r.rywWaits, r.rywWait, r.positions}
}

// ReplicaRead counts a request or read-only transaction of db linked to a standby.
func (m *Metrics) ReplicaRead(db string) { m.rep.reads.WithLabelValues(db).Inc() }

// ReplicaRetried counts a read of db a standby refused as a write, sent to the primary.
func (m *Metrics) ReplicaRetried(db string) { m.rep.retries.WithLabelValues(db).Inc() }

// ReplicaPrimary counts a read of db that could have gone to a standby and went to the
// primary, and why.
func (m *Metrics) ReplicaPrimary(db, reason string) {
	m.rep.primary.WithLabelValues(db, reason).Inc()
}

// RYWPosition counts a primary WAL position learned for read-your-writes: from the
// hosts' checker (fromCheck) or read from the primary.
func (m *Metrics) RYWPosition(db string, fromCheck bool) {
	source := "read"
	if fromCheck {
		source = "check"
	}
	m.rep.positions.WithLabelValues(db, source).Inc()
}

// RYWWaited counts a read that waited d for a standby to replay the client's last commit.
func (m *Metrics) RYWWaited(db string, d time.Duration, replayed bool) {
	result := "replayed"
	if !replayed {
		result = "timeout"
	}
	m.rep.rywWaits.WithLabelValues(db, result).Inc()
	m.rep.rywWait.WithLabelValues(db).Observe(d.Seconds())
}
