package proxy

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/link"
)

// poolKey names a pool: the client-visible database and the client's user.
type poolKey struct{ db, user string }

// poolEntry is a pool with what the proxy keeps beside it. key, pool, direct and prep are
// set once when it is made; mu guards db, mode, params and replicas, written by RELOAD
// and read by sessions, the console and the metrics collector; the atomics mirror what
// the relay reads per message or per transaction without mu.
type poolEntry struct {
	key    poolKey
	names  names // key's names, which its clients that logged in with them point to
	pool   *pool.Pool
	direct *budget // direct_pool_size: pinned connections of the database
	prep   *prepStats

	mu   sync.Mutex
	db   *config.Database
	mode config.PoolMode
	// modeNow mirrors mode for the relay's per-transaction check without e.mu.
	modeNow atomic.Int32
	// multi mirrors whether db names several hosts (failover.go), for the same reason.
	multi atomic.Bool
	// removed: a reload took the database away (closeRemoved), or it was an unused
	// auto-database (expireAuto); its clients' figures are no longer kept.
	removed atomic.Bool
	// auto: the database was reached through "*" (no [databases] entry of its own);
	// idleSince (unix seconds, 0 while in use) is since when it has had no client and no
	// server connection (expireAuto). Both guarded by pools.mu.
	auto      bool
	idleSince int64
	params    pool.Params // a server's parameters at login, shown to new clients
	// directWarnAt is when a client waiting for a direct slot was last logged (unix
	// nanoseconds; waiting.go).
	directWarnAt atomic.Int64
	// replicas are the entry's pools on standbys, by host (replica_pools.go); guarded by mu.
	replicas map[*pool.Host]*pool.Pool
	// starts are the startup settings shared by the entry's clients (sharedStart), by
	// their names and values; guarded by mu.
	starts map[string]*settings
	// owns are the clients' reported parameters shared the same way (sharedParams), by
	// the names and values of their own; guarded by mu.
	owns map[string]*sessionParams
	// spellings are the startup values of reported parameters the servers were asked
	// about, by name and value (spellingKey), to how they report them (spelling.go);
	// guarded by mu.
	spellings map[string]string
}

// maxSharedStarts bounds the distinct sets of startup values an entry shares; clients
// with others get settings of their own.
const maxSharedStarts = 64

// sharedParams returns the entry's shared reported parameters of base (the server's
// parameters at login) with the clients' own values own, whose names and values key
// packs. One made over other server parameters (a pool's servers changed) is replaced.
// own may be the caller's stack array: what is kept is a copy (keptParams).
func (e *poolEntry) sharedParams(key []byte, base, own pool.Params) *sessionParams {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.owns[string(key)]; ok && sameParams(p.base, base) {
		return p
	}
	p := &sessionParams{base: base, own: keptParams(own)}
	if _, ok := e.owns[string(key)]; ok || len(e.owns) < maxSharedStarts {
		if e.owns == nil {
			e.owns = make(map[string]*sessionParams)
		}
		p.shared = true
		e.owns[string(key)] = p
	}
	return p
}

// sameParams reports whether a and b are one slice (not only equal).
func sameParams(a, b pool.Params) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// sharedStart returns the entry's shared settings for the startup values start, whose
// names and values key packs.
// start may be the caller's stack array, as sharedParams' own.
func (e *poolEntry) sharedStart(key []byte, start pool.Params) *settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, ok := e.starts[string(key)]; ok {
		return st
	}
	st := &settings{Settings: link.Settings{Start: slices.Clone(start)}, shared: true}
	if len(e.starts) < maxSharedStarts {
		if e.starts == nil {
			e.starts = make(map[string]*settings)
		}
		e.starts[string(key)] = st
	}
	return st
}

func (e *poolEntry) snapshot() (*config.Database, config.PoolMode, pool.Params) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db, e.mode, e.params
}

// pools is the registry of pools and of the shared per-database and per-user caps. Used by
// every session at login, by RELOAD and by the console; mu guards the maps (s and hosts
// are set once by newPools).
type pools struct {
	s       *Server
	mu      sync.Mutex
	byKey   map[poolKey]*poolEntry
	dbCap   map[string]*pool.Limit
	userCap map[string]*pool.Limit
	direct  map[string]*budget
	prep    map[poolKey]*prepStats // outlives entries removed by a reload
	hosts   *clusters              // roles of the hosts of multi-host databases (hosts.go)
	closed  []*pool.Pool           // what closeAll closed, standby pools included (awaitEnded)
}

func newPools(s *Server) *pools {
	return &pools{s: s, byKey: make(map[poolKey]*poolEntry),
		dbCap: make(map[string]*pool.Limit), userCap: make(map[string]*pool.Limit),
		direct: make(map[string]*budget), prep: make(map[poolKey]*prepStats), hosts: newClusters(s.log)}
}

// get returns the pool for (db, user), creating it on first use. A pool made while the
// console holds its database (PAUSE, SUSPEND, KILL) is held from the start.
func (ps *pools) get(cfg *config.Config, db *config.Database, user string) (*poolEntry, error) {
	e, made, err := ps.getOrMake(cfg, db, user)
	if made {
		ps.s.holdNewPool(e.pool, e.key.db)
	}
	return e, err
}

// getOrMake is get without the console's hold; made reports a new entry.
func (ps *pools) getOrMake(cfg *config.Config, db *config.Database, user string) (e *poolEntry, made bool, err error) {
	k := poolKey{db.Name, user}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if e, ok := ps.byKey[k]; ok {
		e.idleSince = 0 // a client is logging in: in use again (expireAuto)
		return e, false, nil
	}
	e = &poolEntry{key: k, names: names{user: user, dbName: db.Name}, db: db, mode: cfg.EffectivePoolMode(db, user), prep: ps.prepStatsFor(k),
		auto: cfg.Databases[db.Name] == nil}
	e.modeNow.Store(int32(e.mode))
	e.multi.Store(multiHost(db))
	opts := ps.options(cfg, e, db, user)
	opts.Limits = []*pool.Limit{ps.capFor(ps.dbCap, db.Name, cfg.EffectiveMaxDBConnections(db)),
		ps.capFor(ps.userCap, user, cfg.EffectiveMaxUserConnections(user))}
	p, err := pool.New(opts)
	if err != nil {
		return nil, false, err
	}
	e.pool = p
	e.direct = ps.directFor(db.Name, cfg.EffectiveDirectPoolSize(db))
	ps.byKey[k] = e
	if cl := ps.hosts.forDB(db); cl != nil {
		// The first pool's login (its user's credentials) serves the hosts' checkers. The
		// closure has a copy of e: capturing the result itself would move it to the heap
		// on every login, the ones that find their pool made too.
		made := e
		cl.Watch(func() *pool.Target { return ps.target(made, user) }, cfg.ServerConnectTimeout)
	}
	return e, true, nil
}

// lookup returns the pool for (db, user) if there is one.
func (ps *pools) lookup(db, user string) *poolEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.byKey[poolKey{db, user}]
}

// transient makes a pool of one connection for user on db that no registry holds (the
// caller closes it), for auth_query before a client has authenticated (authQueryPool):
// it is held to user's max_user_connections, whose limit already exists for auth_user,
// and adds nothing per database name.
func (ps *pools) transient(cfg *config.Config, db *config.Database, user string) (*pool.Pool, error) {
	return pool.New(ps.transientOptions(cfg, db, user))
}

// transientOptions are the options of such a pool of one connection (transient,
// checkPool).
func (ps *pools) transientOptions(cfg *config.Config, db *config.Database, user string) pool.Options {
	e := &poolEntry{key: poolKey{db.Name, user}, db: db}
	opts := ps.options(cfg, e, db, user)
	opts.Size, opts.MinSize, opts.ReserveSize = 1, 0, 0
	ps.mu.Lock()
	opts.Limits = []*pool.Limit{ps.capFor(ps.userCap, user, cfg.EffectiveMaxUserConnections(user))}
	ps.mu.Unlock()
	return opts
}

// directFor returns the database's direct budget, shared by its users' pools.
func (ps *pools) directFor(db string, max int) *budget {
	b, ok := ps.direct[db]
	if !ok {
		b = newBudget(max)
		ps.direct[db] = b
	}
	return b
}

func (ps *pools) capFor(m map[string]*pool.Limit, name string, max int) *pool.Limit {
	l, ok := m[name]
	if !ok {
		l = pool.NewLimit(max)
		m[name] = l
	}
	return l
}

// options derives a pool's options from the configuration.
func (ps *pools) options(cfg *config.Config, e *poolEntry, db *config.Database, user string) pool.Options {
	check, enabled := cfg.CheckQuery()
	switch {
	case !enabled:
		check = ""
	case check == "":
		check = ";" // an empty query still proves the server answers
	}
	return pool.Options{
		Database: db.Name, User: user,
		Target:         func() *pool.Target { return ps.target(e, user) },
		Size:           cfg.EffectivePoolSize(db, user),
		MinSize:        cfg.EffectiveMinPoolSize(db),
		ReserveSize:    cfg.EffectiveReservePool(db, user),
		ReserveTimeout: cfg.ReservePoolTimeout,
		Lifetime:       cfg.ServerLifetime,
		IdleTimeout:    cfg.ServerIdleTimeout,
		CheckQuery:     check,
		CheckDelay:     cfg.ServerCheckDelay,
		ResetQuery:     cfg.ServerResetQuery,
		ConnectTimeout: cfg.ServerConnectTimeout,
		LoginRetry:     cfg.ServerLoginRetry,
		// Clients queued behind failed dials while no primary answers wait at most
		// failover_timeout (failover.go).
		FailoverTimeout: failoverWait(cfg, db),
		Logger:          ps.s.log.With(zap.String("db", db.Name), zap.String("user", user)),

		LogConnections:    cfg.LogConnections,
		LogDisconnections: cfg.LogDisconnections,
	}
}

// target builds the login target for a new server connection of e.
func (ps *pools) target(e *poolEntry, clientUser string) *pool.Target {
	db, _, _ := e.snapshot()
	s := ps.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &pool.Target{Host: db.Host, Port: db.Port, Database: db.DBName, User: clientUser,
		ConnectQuery: db.ConnectQuery}
	if db.DBName == "" {
		t.Database = db.Name
	}
	if db.User != "" {
		t.User = db.User
	}
	switch {
	case db.User != "" && db.Password != "":
		t.Password = db.Password
	default:
		if c, ok := s.creds[t.User]; ok && !isSCRAMSecret(c.Password) {
			t.Password = c.Password
		} else if k, ok := s.scramKeys[t.User]; ok && k.password != "" {
			t.Password = k.password
		} else if ok {
			t.SCRAMClientKey, t.SCRAMServerKey = k.clientKey, k.serverKey
		} else if secret, found := s.authQuerySecret(t.User); found && !isSCRAMSecret(secret) {
			t.Password = secret // an md5 hash or plain password from auth_query
		} else if db.Password != "" {
			t.Password = db.Password
		}
	}
	for _, p := range [...]pool.Param{{Name: "client_encoding", Value: db.ClientEncoding},
		{Name: "datestyle", Value: db.DateStyle}, {Name: "timezone", Value: db.TimeZone},
		{Name: "application_name", Value: db.ApplicationName}} {
		if p.Value != "" {
			t.Params = append(t.Params, p)
		}
	}
	// The upstream URL's options: a setting also given as a parameter above
	// (application_name) keeps that value, as PostgreSQL gives its startup parameters
	// precedence over options.
	for _, o := range db.StartupOptions() {
		if _, ok := t.Params.Get(o.Key); !ok {
			t.Params = append(t.Params, pool.Param{Name: o.Key, Value: o.Value})
		}
	}
	s.serverTLSLocked(t)
	ps.hosts.aim(t, db)
	return t
}

// serverParams returns the parameters a new client of e is shown at login, logging in to
// a server the first time to learn them.
func (ps *pools) serverParams(ctx context.Context, e *poolEntry, l *Session) (pool.Params, error) {
	if _, _, p := e.snapshot(); p != nil {
		return p, nil
	}
	c, err := e.pool.Acquire(ctx, &idleLessee{})
	if err != nil {
		return nil, err
	}
	params := c.Params.Clone()
	c.Release(false)
	e.mu.Lock()
	e.params = params
	e.mu.Unlock()
	return params, nil
}

// reconfigure applies a new configuration to existing pools.
func (ps *pools) reconfigure(cfg *config.Config) {
	var removed []*poolEntry
	defer func() { ps.s.closeRemoved(removed) }() // after ps.mu: closing a session may look up pools
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, e := range ps.byKey {
		db, ok := cfg.DatabaseFor(k.db)
		if !ok {
			e.removed.Store(true) // before the close: a request that finds it closed ends the client (dispatch)
			e.pool.Close()
			e.closeReplicas()
			delete(ps.byKey, k)
			removed = append(removed, e)
			continue
		}
		e.auto, e.idleSince = cfg.Databases[k.db] == nil, 0
		e.mu.Lock()
		moved := e.db.HostKey() != db.HostKey() || e.db.TargetSessionAttrs != db.TargetSessionAttrs
		e.db = db
		e.mode = cfg.EffectivePoolMode(db, k.user)
		e.modeNow.Store(int32(e.mode))
		e.multi.Store(multiHost(db))
		e.mu.Unlock()
		if moved {
			// Other servers, as PgBouncer does on a host change: idle connections close
			// now, leased ones when released.
			e.pool.Reconnect()
			e.closeReplicas()
		}
		ps.reconfigureReplicas(cfg, e, db)
		if err := e.pool.Reconfigure(ps.options(cfg, e, db, k.user)); err != nil {
			ps.s.log.Warn("reconfigure pool", zap.Error(err))
		}
		if cl := ps.hosts.forDB(db); cl != nil { // new hosts: check them too
			cl.Watch(func() *pool.Target { return ps.target(e, k.user) }, cfg.ServerConnectTimeout)
		}
	}
	for name, l := range ps.dbCap {
		if db, ok := cfg.DatabaseFor(name); ok {
			l.SetMax(cfg.EffectiveMaxDBConnections(db))
		}
	}
	for name, b := range ps.direct {
		if db, ok := cfg.DatabaseFor(name); ok {
			b.setMax(cfg.EffectiveDirectPoolSize(db))
		}
	}
	for name, l := range ps.userCap {
		l.SetMax(cfg.EffectiveMaxUserConnections(name))
	}
	keep := make(map[string]bool)
	for _, e := range ps.byKey {
		db, _, _ := e.snapshot()
		keep[db.HostKey()] = true
	}
	ps.hosts.retain(keep)
}

func (ps *pools) all() []*poolEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*poolEntry, 0, len(ps.byKey))
	for _, e := range ps.byKey {
		out = append(out, e)
	}
	return out
}

func (ps *pools) closeAll() {
	for _, e := range ps.all() {
		e.pool.Close()
		rs := e.closeReplicas()
		ps.mu.Lock()
		if !slices.Contains(ps.closed, e.pool) {
			ps.closed = append(ps.closed, e.pool)
		}
		ps.closed = append(ps.closed, rs...)
		ps.mu.Unlock()
	}
	ps.hosts.closeAll()
}

// awaitEnded waits, at most d, until every pool closeAll closed, and the more given (the
// LISTEN listeners'), has no connection left (pool.Ended): the readers of server
// connections closed at their release end on their own goroutines, and one that logs
// after Stop has returned writes to a log its host may have closed (a test's file), or
// loses the line as the process exits.
func (ps *pools) awaitEnded(d time.Duration, more ...*pool.Pool) bool {
	ps.mu.Lock()
	closed := append(slices.Clone(ps.closed), more...)
	ps.mu.Unlock()
	deadline := time.Now().Add(d)
	for _, p := range closed {
		for !p.Ended() {
			if !time.Now().Before(deadline) {
				return false
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return true
}

// idleLessee holds a connection briefly without using it (learning parameters).
type idleLessee struct{ _ byte }

func (l *idleLessee) Pump(c *pool.Conn) error {
	for {
		if c.Lessee() != pool.Lessee(l) {
			return nil
		}
		_, n, err := c.Rd.Next()
		if err != nil {
			return err
		}
		if c.Lessee() == pool.Lessee(l) {
			if err := c.Rd.Skip(n); err != nil {
				return err
			}
		}
	}
}

// closeRemoved closes the clients of pools whose database a reload removed, as PgBouncer
// does (its kill_database): left connected, each of their requests would fail against a
// closed pool until they reconnect, and SHOW POOLS would keep listing a database SHOW
// DATABASES no longer has. A client reconnecting is then told the database is unknown,
// or finds it again under a wildcard entry. They are told and closed all at once
// (killAll) on a goroutine of their own (a reply being relayed may have to end first),
// so a reload does not wait.
func (s *Server) closeRemoved(removed []*poolEntry) {
	if len(removed) == 0 {
		return
	}
	gone := make(map[*poolEntry]bool, len(removed))
	s.forgetEntries(removed)
	for _, e := range removed {
		gone[e] = true
		s.log.Warn("reload: database removed; closing its clients", zap.String("database", e.key.db), zap.String("user", e.key.user))
	}
	var ended []*Session
	for _, sess := range s.Sessions() {
		if sess.entry != nil && gone[sess.entry] {
			ended = append(ended, sess)
		}
	}
	go killAll(ended, func(sess *Session) *pgerr.Error { return removedFatal(sess.dbName) })
}

// removedFatal is what a client of a database a reload removed is told.
func removedFatal(db string) *pgerr.Error {
	return pgerr.Fatal(pgerr.AdminShutdown, "database %q was removed from the configuration", db).
		WithDetail("pgmux reloaded a configuration without it.")
}

// forgetEntries drops the figures of pools taken away (their clients' later ones too).
func (s *Server) forgetEntries(es []*poolEntry) {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		e.removed.Store(true)
		delete(c.retired, e.key)
	}
}

// hasAuto reports whether any pool is of a database reached through "*".
func (ps *pools) hasAuto() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, e := range ps.byKey {
		if e.auto {
			return true
		}
	}
	return false
}

// expireAuto drops the pools of databases reached through "*" that have had no client
// (inUse: the entries logged-in clients hold) and no server connection for after
// (autodb_idle_timeout; 0 keeps them), as PgBouncer frees its auto-databases: without it
// every name a client ever asked for kept a pool, its limits and its figures until a
// reload. now is the sweep's clock (unix seconds). It returns the pools dropped.
func (ps *pools) expireAuto(now int64, after time.Duration, inUse map[*poolEntry]bool) []*poolEntry {
	if after <= 0 {
		return nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var dropped []*poolEntry
	for k, e := range ps.byKey {
		if !e.auto {
			continue
		}
		if inUse[e] || e.pool.Stats().Connected > 0 {
			e.idleSince = 0
			continue
		}
		if e.idleSince == 0 {
			e.idleSince = now
			continue
		}
		if time.Duration(now-e.idleSince)*time.Second < after {
			continue
		}
		e.pool.Close()
		e.closeReplicas()
		delete(ps.byKey, k)
		dropped = append(dropped, e)
	}
	return dropped
}

// expireAutoDatabases is the idle sweep's part for auto-databases (expireAuto); inUse
// holds the entries of the logged-in clients.
func (s *Server) expireAutoDatabases(now int64, inUse map[*poolEntry]bool) {
	after := s.Config().AutodbIdleTimeout
	if after <= 0 {
		return
	}
	dropped := s.pools.expireAuto(now, after, inUse)
	if len(dropped) == 0 {
		return
	}
	s.forgetEntries(dropped)
	for _, e := range dropped {
		s.log.Info("dropping an unused auto-database's pool (autodb_idle_timeout)",
			zap.String("database", e.key.db), zap.String("user", e.key.user), zap.Duration("unused_for", after))
	}
}
