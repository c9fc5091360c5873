// Package metrics holds pgmux's Prometheus metrics: the histograms and counters the relay
// and the console update as things happen, and the gauges and per-pool counters read at
// scrape time from a Source (package proxy's snapshots, the same figures SHOW reports).
// It knows nothing of sessions or pools beyond the figures a Source gives it; where the
// metrics are served (metrics_addr) is package proxy's.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Key names a pool: its database and user.
type Key struct{ DB, User string }

// Source gives the figures read at each scrape. Its methods run on the scraping
// goroutine.
type Source interface {
	// ClientsConnected is the number of client connections open, logged in or not.
	ClientsConnected() int
	// Pools returns every pool's clients, servers and totals, pools removed by a reload
	// included (their Servers nil).
	Pools() []Pool
	// Pinned returns, for every pool that has clients, how many are pinned for each
	// reason, zeros included.
	Pinned() []Pinned
	// Hosts returns the servers of every multi-host database, in a stable order; a
	// server named by several databases may come more than once.
	Hosts() []pool.HostState
	// Prepared returns every pool's statement cache figures.
	Prepared() []Prepared
}

// Pool is one pool's figures at one instant.
type Pool struct {
	Key
	Linked, Idle, Waiting int // clients: linked to a server, idle, waiting for one
	WaitingDirect         int // of Waiting: for a direct slot (direct_pool_size)
	// Servers is the pool's own figures; nil for a pool a reload removed.
	Servers *pool.Stats
	MaxWait time.Duration // the longest wait of its waiting clients
	// Totals since start.
	Xacts, Queries, Received, Sent, Assignments uint64
}

// Pinned is how many clients of a pool keep their server, by reason.
type Pinned struct {
	Key
	Reasons []Count
}

// Count is a number of clients for one reason.
type Count struct {
	Reason  string
	Clients int
}

// Prepared is one pool's statement cache figures.
type Prepared struct {
	Key
	Prepared                         int64
	Hits, Misses, Evictions, Retries uint64
	UnnamedHits, UnnamedMisses       uint64
}

// Metrics are pgmux's Prometheus metrics. Gauges and the per-pool counters are read from
// the Source at scrape time by Collect, so the hot path pays nothing for them; the
// histograms are observed where the relay already holds its session's lock (once per
// ReadyForQuery and per server assignment), through Observers resolved once per session.
//
// Owners: every field is set in New and never changes; the Prometheus vectors and the
// histograms take their own locks or atomics, so any goroutine may count.
type Metrics struct {
	src Source

	wait, query, xact *latencyVec // latency.go
	loginFailures     *prometheus.CounterVec
	errorsSent        *prometheus.CounterVec
	reloads           *prometheus.CounterVec
	listenerGaps      *prometheus.CounterVec

	clients, servers, maxWait, paused                       *prometheus.Desc
	xacts, queries, received, sent, assignments             *prometheus.Desc
	connectAttempts, connectFailures, connected             *prometheus.Desc
	pinned, waitingDirect                                   *prometheus.Desc
	prepared, prepHits, prepMisses, prepEvicts, prepRetries *prometheus.Desc
	hostUp, hostPrimary, hostLag, hostLagBytes              *prometheus.Desc
	unnamedHits, unnamedMisses                              *prometheus.Desc
	rep                                                     *replicaMetrics // replica.go
}

// Observers are one pool's histograms.
type Observers struct {
	Wait, Query, Xact *Hist
}

// latencyBuckets span a fast query on a warm pool (sub-millisecond) to a stuck one.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

var poolLabels = []string{"database", "user"}

// New returns the metrics, reading scrape-time figures from src.
func New(src Source) *Metrics {
	hist := newLatencyVec
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgmux", Name: name, Help: help}, labels)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	pl := poolLabels
	return &Metrics{
		src:   src,
		rep:   newReplicaMetrics(),
		wait:  hist("wait_duration_seconds", "Time clients waited for a server connection, per server assignment."),
		query: hist("query_duration_seconds", "Time from a client's request to the server's ReadyForQuery."),
		xact:  hist("transaction_duration_seconds", "Time from the first query of a transaction to its end (autocommit queries count as transactions)."),
		loginFailures: counter("client_login_failures_total",
			"Client logins refused, by reason: password, not_allowed, unknown_database, too_many_connections, unavailable, "+
				"protocol, server_login (pgmux's own login to the server failed; the client's was fine), other.", "reason"),
		errorsSent: counter("errors_sent_total", "ErrorResponses sent to clients (pgmux's own and relayed from servers), by SQLSTATE class.", "class"),
		reloads:    counter("reloads_total", "Configuration reloads, by result (success or failure).", "result"),
		listenerGaps: counter("listener_gaps_total", "Times a database's shared LISTEN connection was lost and listened "+
			"again; notifications sent in between were missed, and its clients were told so by a WARNING notice.", "database"),

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
		hostLag: desc("pgmux_host_replication_lag_seconds", "How far a standby's replay is behind: how long ago "+
			"the primary was at the WAL position the standby has replayed, as pgmux's checks saw it (0 once it has "+
			"replayed the primary's last seen position; 0 for the primary).", "host"),
		hostLagBytes: desc("pgmux_host_replication_lag_bytes",
			"WAL a standby has still to replay, against the primary's last known flushed position.", "host"),
		unnamedHits: desc("pgmux_prepared_unnamed_hits_total",
			"Parses of the unnamed statement served from the server's statement cache (cache_unnamed_statements).", pl...),
		unnamedMisses: desc("pgmux_prepared_unnamed_misses_total",
			"Parses of the unnamed statement eligible for the statement cache that went to the server: first sightings, "+
				"statements prepared on their second sighting, stale ones prepared again (cache_unnamed_statements).", pl...),
	}
}

// Register adds every metric to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.wait, m.query, m.xact, m.loginFailures, m.errorsSent, m.reloads, m.listenerGaps, m}, m.rep.collectors()...) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Observers returns the histograms of pool k.
func (m *Metrics) Observers(k Key) *Observers {
	return &Observers{Wait: m.wait.of(k), Query: m.query.of(k), Xact: m.xact.of(k)}
}

// ErrorSent counts an ErrorResponse sent to a client.
func (m *Metrics) ErrorSent(code string) {
	class := "XX"
	if len(code) >= 2 {
		class = code[:2]
	}
	m.errorsSent.WithLabelValues(class).Inc()
}

// ListenerGap counts a loss of database db's shared LISTEN connection that its
// subscribers were told of (proxy/listenmux).
func (m *Metrics) ListenerGap(db string) { m.listenerGaps.WithLabelValues(db).Inc() }

// LoginFailed counts a refused client login by the SQLSTATE it was refused with.
func (m *Metrics) LoginFailed(code string) {
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
	m.ErrorSent(code)
}

// ServerLoginFailed counts a client login refused because pgmux's own login to the
// server failed (reason server_login): the FATAL's code (08P01) says nothing against the
// client.
func (m *Metrics) ServerLoginFailed(code string) {
	m.loginFailures.WithLabelValues("server_login").Inc()
	m.ErrorSent(code)
}

// Reloaded counts a reload.
func (m *Metrics) Reloaded(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
}

// Describe implements prometheus.Collector for the scrape-time metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.clients, m.servers, m.maxWait, m.paused, m.xacts, m.queries,
		m.received, m.sent, m.assignments, m.connectAttempts, m.connectFailures, m.connected, m.pinned,
		m.waitingDirect, m.prepared, m.prepHits, m.prepMisses, m.prepEvicts, m.prepRetries,
		m.hostUp, m.hostPrimary, m.hostLag, m.hostLagBytes, m.unnamedHits, m.unnamedMisses} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one reading of the Source per scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	gauge(m.connected, float64(m.src.ClientsConnected()))
	for _, p := range m.src.Pools() {
		db, user := p.DB, p.User
		gauge(m.clients, float64(p.Linked), db, user, "linked")
		gauge(m.clients, float64(p.Idle), db, user, "idle")
		gauge(m.clients, float64(p.Waiting), db, user, "waiting")
		gauge(m.waitingDirect, float64(p.WaitingDirect), db, user)
		if st := p.Servers; st != nil {
			gauge(m.servers, float64(st.Active), db, user, "active")
			gauge(m.servers, float64(st.Idle), db, user, "idle")
			gauge(m.servers, float64(st.Tested), db, user, "tested")
			gauge(m.servers, float64(st.Login), db, user, "login")
			gauge(m.maxWait, p.MaxWait.Seconds(), db, user)
			paused := 0.0
			if st.Paused {
				paused = 1
			}
			gauge(m.paused, paused, db, user)
			counter(m.connectAttempts, float64(st.Connects+st.ConnectFailures), db, user)
			counter(m.connectFailures, float64(st.ConnectFailures), db, user)
		}
		counter(m.xacts, float64(p.Xacts), db, user)
		counter(m.queries, float64(p.Queries), db, user)
		counter(m.received, float64(p.Received), db, user)
		counter(m.sent, float64(p.Sent), db, user)
		counter(m.assignments, float64(p.Assignments), db, user)
	}
	for _, p := range m.src.Pinned() {
		for _, c := range p.Reasons {
			gauge(m.pinned, float64(c.Clients), p.DB, p.User, c.Reason)
		}
	}
	m.collectHosts(gauge)
	for _, p := range m.src.Prepared() {
		db, user := p.DB, p.User
		gauge(m.prepared, float64(p.Prepared), db, user)
		counter(m.prepHits, float64(p.Hits), db, user)
		counter(m.prepMisses, float64(p.Misses), db, user)
		counter(m.prepEvicts, float64(p.Evictions), db, user)
		counter(m.prepRetries, float64(p.Retries), db, user)
		counter(m.unnamedHits, float64(p.UnnamedHits), db, user)
		counter(m.unnamedMisses, float64(p.UnnamedMisses), db, user)
	}
}

// collectHosts reports each server of the multi-host databases once, however many
// databases name it.
func (m *Metrics) collectHosts(gauge func(d *prometheus.Desc, v float64, lv ...string)) {
	seen := make(map[string]bool)
	for _, st := range m.src.Hosts() {
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
