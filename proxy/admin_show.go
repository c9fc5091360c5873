package proxy

import (
	"cmp"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/console"
)

// showCommands maps each SHOW name to the function building its answer. Column names
// and order follow PgBouncer 1.25 (testdata/pgbouncer-1.25-show-columns.tsv); pgmux's own
// figures come only as trailing columns or separate commands.
var showCommands map[string]func(s *Server) []byte

func init() {
	showCommands = map[string]func(s *Server) []byte{
		"HELP":           (*Server).showHelp,
		"VERSION":        (*Server).showVersion,
		"CONFIG":         (*Server).showConfig,
		"DATABASES":      (*Server).showDatabases,
		"POOLS":          (*Server).showPools,
		"CLIENTS":        (*Server).showClients,
		"SERVERS":        (*Server).showServers,
		"USERS":          (*Server).showUsers,
		"STATS":          (*Server).showStats,
		"STATS_TOTALS":   (*Server).showStatsTotals,
		"STATS_AVERAGES": (*Server).showStatsAverages,
		"TOTALS":         (*Server).showTotals,
		"LISTS":          (*Server).showLists,
		"STATE":          (*Server).showState,
		"MEM":            (*Server).showMem,
		"FDS":            (*Server).showFDs,
		"SOCKETS":        (*Server).showSockets,
		"ACTIVE_SOCKETS": (*Server).showActiveSockets,
		"DNS_HOSTS":      (*Server).showDNSHosts,
		"DNS_ZONES":      (*Server).showDNSZones,
		// pgmux's own: the prepared statement caches of transaction and statement mode.
		"PREPARED":         (*Server).showPrepared,
		"PREPARED_SERVERS": (*Server).showPreparedServers,
		// pgmux's own: the servers of multi-host databases, their roles and lag (hosts.go).
		"HOSTS": (*Server).showHosts,
	}
}

// show answers SHOW name (name upper-cased).
func (s *Server) show(name string) ([]byte, error) {
	f, ok := showCommands[name]
	if !ok {
		return nil, console.Error("invalid SHOW command %q, use SHOW HELP;", name)
	}
	return f(s), nil
}

const helpText = `SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION
SHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE
SHOW DNS_HOSTS|DNS_ZONES
SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS
SHOW PREPARED|PREPARED_SERVERS
SHOW HOSTS
SET key = arg
RELOAD
PAUSE [<db>]
RESUME [<db>]
DISABLE <db>
ENABLE <db>
RECONNECT [<db>]
KILL <db>
KILL_CLIENT <id>
SUSPEND
SHUTDOWN
SHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS
WAIT_CLOSE [<db>]`

func (s *Server) showHelp() []byte {
	return wire.CommandComplete(console.Notice(nil, "Console usage", helpText), "SHOW")
}

func (s *Server) showVersion() []byte {
	r := console.NewResult(nil, console.Text("version"))
	r.Row("PgBouncer " + compatVersion + " (pgmux " + s.console.version + ")")
	return r.Done("SHOW")
}

// showConfig lists every setting as PgBouncer 1.25 does (key, value, default,
// changeable), then pgmux's own. PgBouncer's settings pgmux ignores are listed too (tools
// read them), with PgBouncer's changeable, which RELOAD follows (config.KeepRestartOnly);
// when the configuration sets any of them, a NOTICE first names them as having no
// effect, as the warnings at start and RELOAD do.
func (s *Server) showConfig() []byte {
	cfg := s.Config()
	var dst []byte
	if ignored := sortedKeys(cfg.Ignored); len(ignored) > 0 {
		dst = console.Notice(nil, "pgmux ignores "+strings.Join(ignored, ", ")+": these settings have no effect",
			"They are PgBouncer settings pgmux accepts but does not implement; SET and RELOAD change at most what SHOW CONFIG shows.")
	}
	r := console.NewResult(dst, console.Text("key"), console.Text("value"), console.Text("default"), console.Text("changeable"))
	for _, st := range config.Describe(cfg) {
		ch := "no"
		if st.Reloadable {
			ch = "yes"
		}
		r.Row(st.Name, st.Value, st.Default, ch)
	}
	return r.Done("SHOW")
}

// nullIfEmpty is v, or SQL NULL when v is empty.
func nullIfEmpty(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func (s *Server) showDatabases() []byte {
	cfg := s.Config()
	r := console.NewResult(nil, console.Text("name"), console.Text("host"), console.Int4("port"), console.Text("database"),
		console.Text("force_user"), console.Int4("pool_size"), console.Int4("min_pool_size"), console.Int4("reserve_pool_size"),
		console.Int4("server_lifetime"), console.Text("pool_mode"), console.Text("load_balance_hosts"),
		console.Int4("max_connections"), console.Int4("current_connections"), console.Int4("max_client_connections"),
		console.Int4("current_client_connections"), console.Int4("paused"), console.Int4("disabled"),
		// pgmux's own, for several hosts: which servers the entry uses, each host's role,
		// and the largest replication lag among its standbys.
		console.Text("target_session_attrs"), console.Text("host_roles"), console.Int8("replication_lag_ms"),
		// and whether its clients read from standbys (replica.go).
		console.Text("replica_reads"))
	// Configured databases, and those a client opened through the "*" fallback.
	dbs := make(map[string]*config.Database)
	for name, db := range cfg.Databases {
		if name != "*" {
			dbs[name] = db
		}
	}
	for _, e := range s.pools.all() {
		if _, ok := dbs[e.key.db]; !ok {
			db, _, _ := e.snapshot()
			dbs[e.key.db] = db
		}
	}
	clients := make(map[string]int)
	admins := 0
	for _, sess := range s.Sessions() {
		if sess.entry == nil {
			admins++
		} else {
			clients[sess.dbName]++
		}
	}
	s.pools.mu.Lock()
	servers := make(map[string]int, len(s.pools.dbCap))
	for name, l := range s.pools.dbCap {
		servers[name] = l.Count()
	}
	s.pools.mu.Unlock()
	c := s.console
	r.Row("pgbouncer", nil, cfg.ListenPort, "pgbouncer", "pgbouncer", 2, 0, 0, 0, "statement", nil,
		0, 0, 0, admins, 0, 0, nil, nil, nil, "off")
	for _, name := range sortedKeys(dbs) {
		db := dbs[name]
		dbname := db.DBName
		if dbname == "" || dbname == "*" {
			dbname = name
		}
		c.mu.Lock()
		// PgBouncer's db_paused: PAUSE db and KILL db; a global PAUSE or SUSPEND shows
		// in SHOW STATE, not here.
		paused := c.paused[name] || c.killed[name]
		disabled := c.disabled[name]
		c.mu.Unlock()
		roles, lag := s.pools.hosts.hostsSummary(db)
		r.Row(name, nullIfEmpty(db.Host), db.Port, dbname, nullIfEmpty(db.User),
			cfg.EffectivePoolSize(db, ""), cfg.EffectiveMinPoolSize(db), cfg.EffectiveReservePool(db, ""),
			int(cfg.ServerLifetime/time.Second), nullIfEmpty(db.PoolMode.String()), db.EffectiveLoadBalanceHosts(),
			cfg.EffectiveMaxDBConnections(db), servers[name], 0, clients[name], paused, disabled,
			db.EffectiveTargetSessionAttrs(), nullIfEmpty(roles), lag, cfg.EffectiveReplica(db).Reads)
	}
	return r.Done("SHOW")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortSnaps(ps []*poolSnap) {
	slices.SortFunc(ps, func(a, b *poolSnap) int {
		return cmp.Or(cmp.Compare(a.key.db, b.key.db), cmp.Compare(a.key.user, b.key.user))
	})
}

func (s *Server) showPools() []byte {
	r := console.NewResult(nil, console.Text("database"), console.Text("user"), console.Int4("cl_active"), console.Int4("cl_waiting"),
		console.Int4("cl_active_cancel_req"), console.Int4("cl_waiting_cancel_req"), console.Int4("sv_active"),
		console.Int4("sv_active_cancel"), console.Int4("sv_being_canceled"), console.Int4("sv_idle"), console.Int4("sv_used"),
		console.Int4("sv_tested"), console.Int4("sv_login"), console.Int4("maxwait"), console.Int4("maxwait_us"),
		console.Text("pool_mode"), console.Text("load_balance_hosts"))
	admins := 0
	for _, sess := range s.Sessions() {
		if sess.entry == nil {
			admins++
		}
	}
	r.Row("pgbouncer", "pgbouncer", admins, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "statement", nil)
	for _, p := range s.snapshot() {
		mode := ""
		if p.entry != nil {
			_, m, _ := p.entry.snapshot()
			mode = m.String()
		}
		wait := p.maxWaitAll()
		r.Row(p.key.db, p.key.user, p.clActive, p.clWaiting, 0, 0, p.stats.Active, 0, 0,
			p.stats.Idle, 0, p.stats.Tested, p.stats.Login,
			int(wait/time.Second), int((wait%time.Second)/time.Microsecond), nullIfEmpty(mode), nil)
	}
	return r.Done("SHOW")
}

// hostPort splits a socket's address into the addr and port columns of SHOW CLIENTS,
// SERVERS, SOCKETS and FDS. A unix socket is "unix", as PgBouncer shows it (a path, or
// Go's "@" for an unnamed end, is no address a user can match), with the port its name
// ends in (.s.PGSQL.N): listenPort for an unnamed end, as PgBouncer gives its own port.
func hostPort(a net.Addr, listenPort int) (string, int) {
	if a == nil {
		return "", 0
	}
	s := a.String()
	if a.Network() == "unix" || strings.HasPrefix(s, "/") || s == "@" {
		_, name, named := strings.Cut(filepath.Base(s), ".s.PGSQL.")
		if n, err := strconv.Atoi(name); named && err == nil {
			return "unix", n
		}
		return "unix", listenPort
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return s, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// clientAddr prints a client's address as the console's views show it (hostPort): host:port,
// and for a unix socket "unix:" and the port, as PgBouncer logs one (unix(pid):port), where
// Go prints "@" for the client's unnamed end, which says nothing.
type clientAddr struct {
	a          net.Addr
	listenPort int
}

func (c clientAddr) String() string {
	h, p := hostPort(c.a, c.listenPort)
	return net.JoinHostPort(h, strconv.Itoa(p))
}

// pgbTime formats a timestamp as PgBouncer's SHOW CLIENTS/SERVERS do.
func pgbTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

func connListCols() []console.Column {
	return []console.Column{console.Text("type"), console.Text("user"), console.Text("database"), console.Text("replication"),
		console.Text("state"), console.Text("addr"), console.Int4("port"), console.Text("local_addr"), console.Int4("local_port"),
		console.Text("connect_time"), console.Text("request_time"), console.Int4("wait"), console.Int4("wait_us"),
		console.Int4("close_needed"), console.Text("ptr"), console.Text("link"), console.Int4("remote_pid"), console.Text("tls"),
		console.Text("application_name"), console.Int4("prepared_statements"), console.Int8("id")}
}

func ptr(kind byte, id uint64) string {
	if id == 0 {
		return ""
	}
	return string(kind) + strconv.FormatUint(id, 16)
}

func (s *Server) showClients() []byte {
	// pin_reason, pgmux's own, trails PgBouncer's columns: why a transaction-mode client
	// keeps its server (sticky.go), empty when it does not.
	r := console.NewResult(nil, append(connListCols(), console.Text("pin_reason"))...)
	for _, c := range s.clientRows() {
		r.Row(append(c.vals, c.pin)...)
	}
	return r.Done("SHOW")
}

// colState is the index of the state column in connListCols.
const colState = 4

// rowValues are one SHOW row's values in column order, as console.Result.Row takes them.
type rowValues []any

// clientRow is one client's connListCols values, the session they are of, and why it
// keeps its server (SHOW CLIENTS' pin_reason).
type clientRow struct {
	sess *Session
	vals rowValues
	pin  string
}

// clientRows are SHOW CLIENTS' rows, by id: the logged-in clients and those waiting
// during login (PAUSE, the pool's first server); state is active, waiting or login.
func (s *Server) clientRows() []clientRow {
	sessions := s.Sessions()
	s.dropGoneWaiters(sessions) // a client that left while waiting is not shown waiting (gone.go)
	sessions = append(sessions, s.waitingLogins()...)
	slices.SortFunc(sessions, func(a, b *Session) int { return cmp.Compare(a.id, b.id) })
	sessions = slices.CompactFunc(sessions, func(a, b *Session) bool { return a == b })
	now := time.Now()
	lp := s.Config().ListenPort
	out := make([]clientRow, 0, len(sessions))
	for _, sess := range sessions {
		in := sess.Info()
		sess.mu.Lock()
		reqAt := sess.lastRequestLocked()
		waiting, since := sess.waitingLocked()
		sess.mu.Unlock()
		if reqAt.IsZero() {
			reqAt = in.ConnectedAt
		}
		state := "active"
		var wait time.Duration
		switch {
		case waiting:
			state = "waiting"
			reqAt = since
			wait = now.Sub(since)
		case in.State == ClientLogin:
			state = "login"
		}
		addr, port := hostPort(in.Remote, lp)
		laddr, lport := hostPort(sess.localAddr(), lp)
		tls := ""
		if in.TLS {
			tls = "TLS"
		}
		db := in.Database
		if sess.entry == nil {
			db = "pgbouncer"
		}
		out = append(out, clientRow{sess, rowValues{"C", in.User, db, sess.kind.replicationName(), state, addr, port,
			laddr, lport, pgbTime(in.ConnectedAt), pgbTime(reqAt), int(wait / time.Second),
			int((wait % time.Second) / time.Microsecond), 0, ptr('c', in.ID), ptr('s', in.ServerID), 0, tls,
			in.ApplicationName, 0, in.ID}, in.PinReason})
	}
	return out
}

func (s *Server) showServers() []byte {
	// role and replication_lag_ms, pgmux's own, trail PgBouncer's columns: of the host a
	// server connection of a multi-host database is on (hosts.go), NULL otherwise.
	r := console.NewResult(nil, append(connListCols(), console.Text("role"), console.Int8("replication_lag_ms"))...)
	for _, c := range s.serverRows() {
		role, lag := connRole(c.conn)
		r.Row(append(c.vals, role, lag)...)
	}
	return r.Done("SHOW")
}

// serverRow is one server connection's connListCols values, the connection, and the
// client it is linked to (nil when none).
type serverRow struct {
	conn *pool.Conn
	link *Session
	vals rowValues
}

// serverRows are SHOW SERVERS' rows: each pool's connections by id, pools by database
// and user, then the LISTEN multiplexing connections, one per database that has
// listeners (state "listener", pgmux's own).
func (s *Server) serverRows() []serverRow {
	var out []serverRow
	lp := s.Config().ListenPort
	for _, e := range sortedEntries(s.pools.all()) {
		db, _, _ := e.snapshot()
		user := e.key.user
		if db.User != "" {
			user = db.User
		}
		conns := e.conns()
		slices.SortFunc(conns, func(a, b *pool.Conn) int { return cmp.Compare(a.ID, b.ID) })
		for _, c := range conns {
			addr, port := hostPort(tcpAddr(c.Addr()), lp)
			laddr, lport := hostPort(c.LocalAddr(), lp)
			link, kind := "", kindPooled
			sess, linked := c.Lessee().(*Session)
			if linked {
				link, kind = ptr('c', sess.id), sess.kind
			}
			prepared := int64(0)
			if e.prep != nil {
				prepared = e.prep.conn(c).prepared
			}
			out = append(out, serverRow{c, sess, rowValues{"S", user, e.key.db, kind.replicationName(), c.State().String(),
				addr, port, laddr, lport, pgbTime(c.Created), pgbTime(c.LastUsed()), 0, 0, c.CloseNeeded(),
				ptr('s', c.ID), link, int64(c.PID), serverTLS(c), "", prepared, c.ID}})
		}
	}
	for _, l := range s.hub.All() {
		c, user := l.Conn()
		if c == nil {
			continue
		}
		addr, port := hostPort(tcpAddr(c.Addr()), lp)
		laddr, lport := hostPort(c.LocalAddr(), lp)
		out = append(out, serverRow{c, nil, rowValues{"S", user, l.DB(), "none", "listener", addr, port, laddr, lport,
			pgbTime(c.Created), pgbTime(c.LastUsed()), 0, 0, 0, ptr('s', c.ID), "",
			int64(c.PID), serverTLS(c), "", 0, c.ID}})
	}
	return out
}

// serverTLS is the tls column of server connection c: "TLS" when it speaks TLS, as
// SHOW CLIENTS marks a client.
func serverTLS(c *pool.Conn) string {
	if _, tls := c.Socket(); tls {
		return "TLS"
	}
	return ""
}

// showPrepared has one row per pool: statements prepared now on its open server
// connections, and its statement cache's hits, misses and evictions since start, and the
// requests retried after a statement's result type changed (retry.go); then the Parses
// of the unnamed statement served from the cache and not (cache_unnamed_statements).
func (s *Server) showPrepared() []byte {
	r := console.NewResult(nil, console.Text("database"), console.Text("user"), console.Int8("prepared_statements"),
		console.Int8("cache_hits"), console.Int8("cache_misses"), console.Int8("cache_evictions"), console.Int8("retries"),
		console.Int8("unnamed_hits"), console.Int8("unnamed_misses"))
	for _, p := range s.preparedSnapshot() {
		r.Row(p.key.db, p.key.user, p.prepared, p.hits, p.misses, p.evictions, p.retries, p.unnamedHits, p.unnamedMisses)
	}
	return r.Done("SHOW")
}

// showPreparedServers has one row per server connection, as SHOW SERVERS lists them
// (LISTEN connections aside): its statement cache's figures over its life.
func (s *Server) showPreparedServers() []byte {
	r := console.NewResult(nil, console.Int8("id"), console.Text("database"), console.Text("user"), console.Int8("prepared_statements"),
		console.Int8("hits"), console.Int8("misses"), console.Int8("evictions"), console.Int8("retries"),
		console.Int8("unnamed_hits"), console.Int8("unnamed_misses"))
	for _, e := range sortedEntries(s.pools.all()) {
		db, _, _ := e.snapshot()
		user := e.key.user
		if db.User != "" {
			user = db.User
		}
		conns := e.conns()
		slices.SortFunc(conns, func(a, b *pool.Conn) int { return cmp.Compare(a.ID, b.ID) })
		for _, c := range conns {
			p := e.prep.conn(c)
			r.Row(c.ID, e.key.db, user, p.prepared, p.hits, p.misses, p.evictions, p.retries, p.unnamedHits, p.unnamedMisses)
		}
	}
	return r.Done("SHOW")
}

// tcpAddr wraps a "host:port" (or unix socket path) string as a net.Addr.
type addrString string

func (a addrString) Network() string { return "tcp" }
func (a addrString) String() string  { return string(a) }

func tcpAddr(s string) net.Addr { return addrString(s) }

func sortedEntries(es []*poolEntry) []*poolEntry {
	slices.SortFunc(es, func(a, b *poolEntry) int {
		return cmp.Or(cmp.Compare(a.key.db, b.key.db), cmp.Compare(a.key.user, b.key.user))
	})
	return es
}

// configuredUsers are the users SHOW USERS lists before any client comes: those of
// [users] and those pgmux holds a password for (auth_file, a [databases] entry's user=,
// the upstream URL's), as PgBouncer lists every auth_file user, so an operator sees
// that a user added to userlist.txt is loaded once RELOAD returns.
func (s *Server) configuredUsers(cfg *config.Config) map[string]bool {
	names := make(map[string]bool)
	for n := range cfg.Users {
		names[n] = true
	}
	s.mu.Lock()
	for n := range s.creds {
		names[n] = true
	}
	s.mu.Unlock()
	return names
}

func (s *Server) showUsers() []byte {
	cfg := s.Config()
	r := console.NewResult(nil, console.Text("name"), console.Int4("pool_size"), console.Int4("reserve_pool_size"),
		console.Text("pool_mode"), console.Int4("max_user_connections"), console.Int4("current_connections"),
		console.Int4("max_user_client_connections"), console.Int4("current_client_connections"))
	names := s.configuredUsers(cfg)
	clients := make(map[string]int)
	for _, sess := range s.Sessions() {
		if sess.entry != nil {
			names[sess.user] = true
			clients[sess.user]++
		}
	}
	s.pools.mu.Lock()
	servers := make(map[string]int, len(s.pools.userCap))
	for n, l := range s.pools.userCap {
		names[n] = true
		servers[n] = l.Count()
	}
	s.pools.mu.Unlock()
	for _, n := range sortedKeys(names) {
		var poolSize, reserve any
		mode := ""
		if u := cfg.Users[n]; u != nil {
			if u.PoolSize >= 0 {
				poolSize = u.PoolSize
			}
			if u.ReservePoolSize >= 0 {
				reserve = u.ReservePoolSize
			}
			mode = u.PoolMode.String()
		}
		r.Row(n, poolSize, reserve, nullIfEmpty(mode), cfg.EffectiveMaxUserConnections(n), servers[n],
			0, clients[n])
	}
	return r.Done("SHOW")
}

// dbTotals sums the pools' counters per database, with the console's as database
// "pgbouncer", as PgBouncer's SHOW STATS lists its admin pool with the others.
func (s *Server) dbTotals() (map[string]totals, []string) {
	out := make(map[string]totals)
	for _, p := range s.snapshot() {
		t := out[p.key.db]
		t.add(&p.totals)
		out[p.key.db] = t
	}
	c := s.console
	c.mu.Lock()
	out["pgbouncer"] = c.own
	c.mu.Unlock()
	return out, sortedKeys(out)
}

// averages are SHOW STATS' avg_ figures: rates per second over the last period, except
// the times, which are per transaction, per query and per server assignment.
type averages struct {
	assignments, xacts, queries, received, sent, parses, serverParses, binds uint64
	xactTime, queryTime, waitTime                                            time.Duration
}

func average(cur, prev totals, since time.Duration) averages {
	d := cur.sub(prev)
	secs := since.Seconds()
	if secs < 1 {
		secs = 1
	}
	rate := func(n uint64) uint64 { return uint64(float64(n) / secs) }
	per := func(t time.Duration, n uint64) time.Duration {
		if n == 0 {
			return 0
		}
		return t / time.Duration(n)
	}
	return averages{
		assignments: rate(d.assignments), xacts: rate(d.xacts), queries: rate(d.queries),
		received: rate(d.received), sent: rate(d.sent), parses: rate(d.parses), serverParses: rate(d.serverParses),
		binds:    rate(d.binds),
		xactTime: per(d.xactTime, d.xacts), queryTime: per(d.queryTime, d.queries),
		waitTime: per(d.waitTime, d.assignments),
	}
}

// statsWindow returns the current totals per database, the totals at the start of the
// averaging window (nil before the first period has passed: the window then runs from
// start) and the window's length.
func (s *Server) statsWindow() (cur, prev map[string]totals, names []string, since time.Duration) {
	cur, names = s.dbTotals()
	now := time.Now()
	// 0, which PgBouncer's configs may carry, is taken as 1 s rather than refused.
	prev, at := s.console.avg.window(now, cur, time.Duration(max(s.Config().StatsPeriod, 1))*time.Second)
	if at.IsZero() {
		at = s.console.started
	}
	return cur, prev, names, now.Sub(at)
}

// statsWithAverages returns the current totals and averages per database.
func (s *Server) statsWithAverages() (map[string]totals, map[string]averages, []string) {
	cur, prev, names, since := s.statsWindow()
	avgs := make(map[string]averages, len(cur))
	for _, n := range names {
		avgs[n] = average(cur[n], prev[n], since)
	}
	return cur, avgs, names
}

func (s *Server) showStats() []byte {
	cur, avgs, names := s.statsWithAverages()
	r := console.NewResult(nil, console.Text("database"), console.Int8("total_server_assignment_count"), console.Int8("total_xact_count"),
		console.Int8("total_query_count"), console.Int8("total_received"), console.Int8("total_sent"), console.Int8("total_xact_time"),
		console.Int8("total_query_time"), console.Int8("total_wait_time"), console.Int8("total_client_parse_count"),
		console.Int8("total_server_parse_count"), console.Int8("total_bind_count"), console.Int8("avg_server_assignment_count"),
		console.Int8("avg_xact_count"), console.Int8("avg_query_count"), console.Int8("avg_recv"), console.Int8("avg_sent"),
		console.Int8("avg_xact_time"), console.Int8("avg_query_time"), console.Int8("avg_wait_time"),
		console.Int8("avg_client_parse_count"), console.Int8("avg_server_parse_count"), console.Int8("avg_bind_count"))
	for _, n := range names {
		t, a := cur[n], avgs[n]
		r.Row(n, t.assignments, t.xacts, t.queries, t.received, t.sent, t.xactTime, t.queryTime, t.waitTime,
			t.parses, t.serverParses, t.binds, a.assignments, a.xacts, a.queries, a.received, a.sent, a.xactTime,
			a.queryTime, a.waitTime, a.parses, a.serverParses, a.binds)
	}
	return r.Done("SHOW")
}

func (s *Server) showStatsTotals() []byte {
	cur, names := s.dbTotals()
	r := console.NewResult(nil, console.Text("database"), console.Int8("server_assignment_count"), console.Int8("xact_count"),
		console.Int8("query_count"), console.Int8("bytes_received"), console.Int8("bytes_sent"), console.Int8("xact_time"),
		console.Int8("query_time"), console.Int8("wait_time"), console.Int8("client_parse_count"),
		console.Int8("server_parse_count"), console.Int8("bind_count"))
	for _, n := range names {
		t := cur[n]
		r.Row(n, t.assignments, t.xacts, t.queries, t.received, t.sent, t.xactTime, t.queryTime, t.waitTime,
			t.parses, t.serverParses, t.binds)
	}
	return r.Done("SHOW")
}

func (s *Server) showStatsAverages() []byte {
	_, avgs, names := s.statsWithAverages()
	r := console.NewResult(nil, console.Text("database"), console.Int8("server_assignment_count"), console.Int8("xact_count"),
		console.Int8("query_count"), console.Int8("bytes_received"), console.Int8("bytes_sent"), console.Int8("xact_time"),
		console.Int8("query_time"), console.Int8("wait_time"), console.Int8("avg_client_parse_count"),
		console.Int8("avg_server_parse_count"), console.Int8("avg_bind_count"))
	for _, n := range names {
		a := avgs[n]
		r.Row(n, a.assignments, a.xacts, a.queries, a.received, a.sent, a.xactTime, a.queryTime, a.waitTime,
			a.parses, a.serverParses, a.binds)
	}
	return r.Done("SHOW")
}

// showTotals sums every database's counters (not the console's) and averages the sums
// over the same window as SHOW STATS, as PgBouncer's show_stat_totals does: the avg_ rates are per second and
// the avg_ times per transaction, query and assignment of the window, not of the whole
// run.
func (s *Server) showTotals() []byte {
	cur, prev, names, since := s.statsWindow()
	var t, then totals
	for _, n := range names {
		if n == "pgbouncer" {
			// The console's own row is left out: its commands' times (a PAUSE that waits
			// for its servers) are not queries', and would weigh on the averages of the
			// pooled traffic. PgBouncer's admin pool adds nearly nothing here (one query
			// per console client, no bytes, no times).
			continue
		}
		c, p := cur[n], prev[n]
		t.add(&c)
		then.add(&p)
	}
	a := average(t, then, since)
	r := console.NewResult(nil, console.Text("name"), console.Int8("value"))
	for _, kv := range []struct {
		k string
		v any
	}{
		{"total_server_assignment_count", t.assignments}, {"total_xact_count", t.xacts},
		{"total_query_count", t.queries}, {"total_received", t.received}, {"total_sent", t.sent},
		{"total_xact_time", t.xactTime}, {"total_query_time", t.queryTime}, {"total_wait_time", t.waitTime},
		{"total_client_parse_count", t.parses}, {"total_server_parse_count", t.serverParses},
		{"total_bind_count", t.binds}, {"avg_server_assignment_count", a.assignments},
		{"avg_xact_count", a.xacts}, {"avg_query_count", a.queries}, {"avg_recv", a.received},
		{"avg_sent", a.sent}, {"avg_xact_time", a.xactTime}, {"avg_query_time", a.queryTime},
		{"avg_wait_time", a.waitTime}, {"avg_client_parse_count", a.parses},
		{"avg_server_parse_count", a.serverParses}, {"avg_bind_count", a.binds},
	} {
		r.Row(kv.k, kv.v)
	}
	return r.Done("SHOW")
}

func (s *Server) showLists() []byte {
	cfg := s.Config()
	entries := s.pools.all()
	users := s.configuredUsers(cfg)
	usedClients, loginClients := 0, 0
	for _, sess := range s.Sessions() {
		users[sess.user] = true
		if sess.Info().State == ClientLogin {
			loginClients++
		} else {
			usedClients++
		}
	}
	loginClients += int(s.nclients.Load()) - usedClients - loginClients
	freeServers, usedServers := 0, 0
	for _, e := range entries {
		st := e.pool.Stats()
		freeServers += st.Idle
		usedServers += st.Connected - st.Idle // a pinned client's server is in use too
	}
	dbs := 1 // the console database
	for n := range cfg.Databases {
		if n != "*" {
			dbs++
		}
	}
	r := console.NewResult(nil, console.Text("list"), console.Int4("items"))
	for _, kv := range []struct {
		k string
		v int
	}{
		{"databases", dbs}, {"users", len(users)}, {"peers", 0}, {"pools", len(entries) + 1},
		{"peer_pools", 0}, {"free_clients", 0}, {"used_clients", usedClients},
		{"login_clients", max(loginClients, 0)}, {"free_servers", freeServers}, {"used_servers", usedServers},
		{"dns_names", 0}, {"dns_zones", 0}, {"dns_queries", 0}, {"dns_pending", 0},
	} {
		r.Row(kv.k, kv.v)
	}
	return r.Done("SHOW")
}

// showState reports PgBouncer's pause mode: paused by a global PAUSE (SIGUSR1) or by
// the safe shutdown (SHUTDOWN WAIT_FOR_SERVERS, SIGINT), which pauses in PgBouncer too;
// suspended by SUSPEND; active when neither. A PAUSE db or KILL db is not in it (SHOW
// DATABASES' paused shows them), nor the super safe shutdown (WAIT_FOR_CLIENTS, SIGTERM).
func (s *Server) showState() []byte {
	c := s.console
	c.mu.Lock()
	paused := c.pausedAll || s.cutAtRelease()
	suspended := c.suspended
	c.mu.Unlock()
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	r := console.NewResult(nil, console.Text("key"), console.Text("value"))
	r.Row("active", yn(!paused && !suspended))
	r.Row("paused", yn(paused))
	r.Row("suspended", yn(suspended))
	return r.Done("SHOW")
}
