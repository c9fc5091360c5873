package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// metrics are pgmux's Prometheus metrics. Gauges and the per-pool counters are read from
// pool and session snapshots at scrape time by collect, so the hot path pays nothing for
// them; the histograms are observed where the relay already holds Session.mu (once per
// ReadyForQuery and per server assignment), through observers resolved once per session.
type metrics struct {
	srv *Server

	wait, query, xact *latencyVec // latency.go
	loginFailures     *prometheus.CounterVec
	errorsSent        *prometheus.CounterVec
	reloads           *prometheus.CounterVec

	clients, servers, maxWait, paused                       *prometheus.Desc
	xacts, queries, received, sent, assignments             *prometheus.Desc
	connectAttempts, connectFailures, connected             *prometheus.Desc
	pinned, waitingDirect                                   *prometheus.Desc
	prepared, prepHits, prepMisses, prepEvicts, prepRetries *prometheus.Desc
	hostUp, hostPrimary, hostLag, hostLagBytes              *prometheus.Desc
	unnamedHits, unnamedMisses                              *prometheus.Desc
	rep                                                     *replicaMetrics // metrics_replica.go
}

// poolObservers are one pool's histograms.
type poolObservers struct {
	wait, query, xact *latencyHist
}

// latencyBuckets span a fast query on a warm pool (sub-millisecond) to a stuck one.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

var poolLabels = []string{"database", "user"}

func newMetrics(s *Server) *metrics {
	hist := newLatencyVec
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgmux", Name: name, Help: help}, labels)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	pl := poolLabels
	return &metrics{
		srv:   s,
		rep:   newReplicaMetrics(),
		wait:  hist("wait_duration_seconds", "Time clients waited for a server connection, per server assignment."),
		query: hist("query_duration_seconds", "Time from a client's request to the server's ReadyForQuery."),
		xact:  hist("transaction_duration_seconds", "Time from the first query of a transaction to its end (autocommit queries count as transactions)."),
		loginFailures: counter("client_login_failures_total",
			"Client logins refused, by reason: password, not_allowed, unknown_database, too_many_connections, unavailable, protocol, other.", "reason"),
		errorsSent: counter("errors_sent_total", "ErrorResponses sent to clients (pgmux's own and relayed from servers), by SQLSTATE class.", "class"),
		reloads:    counter("reloads_total", "Configuration reloads, by result (success or failure).", "result"),

		clients:         desc("pgmux_pool_clients", "Logged-in clients of the pool by state: linked to a server, idle, or waiting for one.", append(pl, "state")...),
		servers:         desc("pgmux_pool_servers", "Server connections of the pool by state: active, idle, tested, login.", append(pl, "state")...),
		maxWait:         desc("pgmux_pool_max_wait_seconds", "How long the oldest client waiting for a server of the pool has waited.", pl...),
		paused:          desc("pgmux_pool_paused", "1 while the pool is paused (PAUSE, SUSPEND or KILL on the admin console).", pl...),
		xacts:           desc("pgmux_pool_transactions_total", "Transactions completed through the pool (autocommit queries included).", pl...),
		queries:         desc("pgmux_pool_queries_total", "Requests (Query or Sync) completed through the pool.", pl...),
		received:        desc("pgmux_pool_received_bytes_total", "Bytes received from the pool's clients.", pl...),
		sent:            desc("pgmux_pool_sent_bytes_total", "Bytes sent to the pool's clients.", pl...),
		assignments:     desc("pgmux_pool_server_assignments_total", "Times a server connection was linked to a client.", pl...),
		connectAttempts: desc("pgmux_pool_server_connect_attempts_total", "Server connections the pool tried to open.", pl...),
		connectFailures: desc("pgmux_pool_server_connect_failures_total", "Server connections the pool failed to open.", pl...),
		connected:       desc("pgmux_clients_connected", "Client connections open, logged in or not, console included.", nil...),
		waitingDirect: desc("pgmux_pool_clients_waiting_direct", "Clients of the pool waiting for a direct slot "+
			"(direct_pool_size) to keep their server for session state; they count in the waiting clients too.", pl...),
		pinned: desc("pgmux_pinned_clients", "Transaction-mode clients keeping their server for session state, by reason "+
			"(advisory_lock, listen, prepare, with_hold_cursor, temp_object, set, role, load, session); a client "+
			"pinned for several reasons counts under each.", append(pl, "reason")...),
		prepared: desc("pgmux_prepared_statements", "Statements pgmux has prepared on the pool's open server connections "+
			"(transaction and statement mode, prepared_statement_mode=cache).", pl...),
		prepHits: desc("pgmux_prepared_cache_hits_total",
			"Uses of a named statement that found it already prepared on the server connection.", pl...),
		prepMisses: desc("pgmux_prepared_cache_misses_total",
			"Uses of a named statement that had to prepare it on the server connection first.", pl...),
		prepEvicts: desc("pgmux_prepared_cache_evictions_total",
			"Statements closed on a server connection to stay within max_prepared_statements.", pl...),
		prepRetries: desc("pgmux_prepared_retries_total",
			"Requests sent again after PostgreSQL reported that a prepared statement's result type changed "+
				"(0A000 cached plan must not change result type), the statement prepared anew.", pl...),
		hostUp: desc("pgmux_host_up", "1 when the last contact with a server of a multi-host database worked, "+
			"0 when it failed (hosts never reached yet are left out).", "host"),
		hostPrimary: desc("pgmux_host_primary", "1 for the server known as the primary, 0 for a standby "+
			"(servers of unknown role are left out).", "host"),
		hostLag: desc("pgmux_host_replication_lag_seconds", "How far a standby's replay is behind: 0 when it has "+
			"replayed all it received, else the age of the last transaction it replayed (0 for the primary).", "host"),
		hostLagBytes: desc("pgmux_host_replication_lag_bytes",
			"WAL a standby has still to replay, against the primary's last known position.", "host"),
		unnamedHits: desc("pgmux_prepared_unnamed_hits_total",
			"Parses of the unnamed statement served from the server's statement cache (cache_unnamed_statements).", pl...),
		unnamedMisses: desc("pgmux_prepared_unnamed_misses_total",
			"Parses of the unnamed statement eligible for the statement cache that went to the server: first sightings, "+
				"statements prepared on their second sighting, stale ones prepared again (cache_unnamed_statements).", pl...),
	}
}

// register adds every metric to reg.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.wait, m.query, m.xact, m.loginFailures, m.errorsSent, m.reloads, m}, m.rep.collectors()...) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observers returns the histograms of one pool.
func (m *metrics) observers(k poolKey) *poolObservers {
	return &poolObservers{
		wait:  m.wait.of(k),
		query: m.query.of(k),
		xact:  m.xact.of(k),
	}
}

// errorSent counts an ErrorResponse sent to a client.
func (m *metrics) errorSent(code string) {
	class := "XX"
	if len(code) >= 2 {
		class = code[:2]
	}
	m.errorsSent.WithLabelValues(class).Inc()
}

// loginFailed counts a refused client login by the SQLSTATE it was refused with.
func (m *metrics) loginFailed(code string) {
	reason := "other"
	switch code {
	case pgerr.InvalidPassword:
		reason = "password"
	case pgerr.InvalidAuthorization, pgerr.InsufficientPrivilege:
		reason = "not_allowed"
	case pgerr.InvalidCatalogName:
		reason = "unknown_database"
	case pgerr.TooManyConnections:
		reason = "too_many_connections"
	case pgerr.CannotConnectNow, pgerr.ObjectNotInPrerequisite, pgerr.ConnectionFailure:
		reason = "unavailable"
	case pgerr.ProtocolViolation, pgerr.FeatureNotSupported:
		reason = "protocol"
	}
	m.loginFailures.WithLabelValues(reason).Inc()
	m.errorSent(code)
}

// reloaded counts a reload.
func (m *metrics) reloaded(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
}

// Describe implements prometheus.Collector for the scrape-time metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.clients, m.servers, m.maxWait, m.paused, m.xacts, m.queries,
		m.received, m.sent, m.assignments, m.connectAttempts, m.connectFailures, m.connected, m.pinned,
		m.waitingDirect, m.prepared, m.prepHits, m.prepMisses, m.prepEvicts, m.prepRetries,
		m.hostUp, m.hostPrimary, m.hostLag, m.hostLagBytes, m.unnamedHits, m.unnamedMisses} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot of every pool per scrape.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	gauge(m.connected, float64(m.srv.nclients.Load()))
	for _, p := range m.srv.snapshot() {
		db, user := p.key.db, p.key.user
		gauge(m.clients, float64(p.clActive-p.clIdle), db, user, "linked")
		gauge(m.clients, float64(p.clIdle), db, user, "idle")
		gauge(m.clients, float64(p.clWaiting), db, user, "waiting")
		gauge(m.waitingDirect, float64(p.clWaitingDirect), db, user)
		if p.entry != nil {
			st := p.stats
			gauge(m.servers, float64(st.Active), db, user, "active")
			gauge(m.servers, float64(st.Idle), db, user, "idle")
			gauge(m.servers, float64(st.Tested), db, user, "tested")
			gauge(m.servers, float64(st.Login), db, user, "login")
			gauge(m.maxWait, p.maxWaitAll().Seconds(), db, user)
			paused := 0.0
			if st.Paused {
				paused = 1
			}
			gauge(m.paused, paused, db, user)
			counter(m.connectAttempts, float64(st.Connects+st.ConnectFailures), db, user)
			counter(m.connectFailures, float64(st.ConnectFailures), db, user)
		}
		t := p.totals
		counter(m.xacts, float64(t.xacts), db, user)
		counter(m.queries, float64(t.queries), db, user)
		counter(m.received, float64(t.received), db, user)
		counter(m.sent, float64(t.sent), db, user)
		counter(m.assignments, float64(t.assignments), db, user)
	}
	m.collectPinned(gauge)
	m.collectHosts(gauge)
	for _, p := range m.srv.preparedSnapshot() {
		db, user := p.key.db, p.key.user
		gauge(m.prepared, float64(p.prepared), db, user)
		counter(m.prepHits, float64(p.hits), db, user)
		counter(m.prepMisses, float64(p.misses), db, user)
		counter(m.prepEvicts, float64(p.evictions), db, user)
		counter(m.prepRetries, float64(p.retries), db, user)
		counter(m.unnamedHits, float64(p.unnamedHits), db, user)
		counter(m.unnamedMisses, float64(p.unnamedMisses), db, user)
	}
}

// collectPinned reports pgmux_pinned_clients: every reason of every pool that has
// clients, zeros included, so a series does not vanish when its last client unpins.
func (m *metrics) collectPinned(gauge func(d *prometheus.Desc, v float64, lv ...string)) {
	counts := make(map[poolKey]*[len(pinNames)]int)
	var keys []poolKey
	for _, sess := range m.srv.Sessions() {
		if sess.entry == nil {
			continue
		}
		k := sess.entry.key
		c := counts[k]
		if c == nil {
			c = new([len(pinNames)]int)
			counts[k] = c
			keys = append(keys, k)
		}
		sess.mu.Lock()
		r := sess.pinned
		sess.mu.Unlock()
		for i := range pinNames {
			if r&(1<<i) != 0 {
				c[i]++
			}
		}
	}
	for _, k := range keys {
		for i, name := range pinNames {
			gauge(m.pinned, float64(counts[k][i]), k.db, k.user, name)
		}
	}
}

// collectHosts reports each server of the multi-host databases once, however many
// entries name it.
func (m *metrics) collectHosts(gauge func(d *prometheus.Desc, v float64, lv ...string)) {
	seen := make(map[string]bool)
	all := m.srv.pools.hosts.all()
	for _, key := range sortedKeys(all) {
		for _, st := range all[key].States() {
			host := st.Endpoint.String()
			if seen[host] {
				continue
			}
			seen[host] = true
			switch {
			case st.Up:
				gauge(m.hostUp, 1, host)
			case st.Down:
				gauge(m.hostUp, 0, host)
			}
			switch st.Role {
			case pool.RolePrimary:
				gauge(m.hostPrimary, 1, host)
			case pool.RoleStandby:
				gauge(m.hostPrimary, 0, host)
			}
			if st.LagMs >= 0 {
				gauge(m.hostLag, float64(st.LagMs)/1000, host)
			}
			if st.LagBytes >= 0 {
				gauge(m.hostLagBytes, float64(st.LagBytes), host)
			}
		}
	}
}
