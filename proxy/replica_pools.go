package proxy

import (
	"slices"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
)

// Standby pools: a pool entry's reads on standbys (replica.go) lease from one pool per
// standby host, made on the first read sent there, sized like the entry's pool, whose
// connections go to that host only and must find it a standby at login. They are
// closed with the entry, and when a reload moves its hosts.

// replicaPool returns e's pool on standby h, making it on first use; one made while the
// console holds the database (PAUSE, SUSPEND, KILL) is held from the start.
func (e *poolEntry) replicaPool(ps *pools, h *pool.Host) *pool.Pool {
	p, made := e.replicaPoolOrMake(ps, h)
	if made {
		ps.s.holdNewPool(p, e.key.db)
	}
	return p
}

// replicaPoolOrMake is replicaPool without the console's hold; made reports a new pool.
func (e *poolEntry) replicaPoolOrMake(ps *pools, h *pool.Host) (p *pool.Pool, made bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.replicas[h]; p != nil {
		return p, false
	}
	// A reload may have removed the entry or moved its database since the read picked h
	// (reconfigure sets e.db, then closes the standby pools): a pool made now would serve
	// a host the operator took away, and a removed entry's would never be closed. The
	// read goes to the primary instead.
	if e.removed.Load() || !slices.Contains(ps.hosts.forDB(e.db).Hosts(), h) {
		return nil, false
	}
	p, err := pool.New(ps.replicaOptions(ps.s.Config(), e, e.db, h))
	if err != nil {
		ps.s.log.Warn("standby pool", zap.Error(err))
		return nil, false
	}
	if e.replicas == nil {
		e.replicas = make(map[*pool.Host]*pool.Pool)
	}
	e.replicas[h] = p
	return p, true
}

// replicaOptions are the options of e's pool on standby h.
func (ps *pools) replicaOptions(cfg *config.Config, e *poolEntry, db *config.Database, h *pool.Host) pool.Options {
	opts := ps.options(cfg, e, db, e.key.user)
	opts.Target = func() *pool.Target {
		t := ps.target(e, e.key.user)
		t.Attrs, t.Only = pool.AttrsStandby, h
		return t
	}
	opts.MinSize = 0
	opts.Logger = opts.Logger.With(zap.Stringer("standby", h.Endpoint))
	return opts
}

// replicaLoad is how many of e's connections to standby h are in use.
func (e *poolEntry) replicaLoad(h *pool.Host) int {
	e.mu.Lock()
	p := e.replicas[h]
	e.mu.Unlock()
	if p == nil {
		return 0
	}
	return p.Stats().Active
}

// replicaPools returns e's standby pools.
func (e *poolEntry) replicaPools() []*pool.Pool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*pool.Pool, 0, len(e.replicas))
	for _, p := range e.replicas {
		out = append(out, p)
	}
	return out
}

// reconnectAll marks every server connection of every pool, standby pools included, for
// closing (pool.Pool.Reconnect).
func (ps *pools) reconnectAll() {
	for _, e := range ps.all() {
		e.pool.Reconnect()
		for _, p := range e.replicaPools() {
			p.Reconnect()
		}
	}
}

// closeReplicas closes e's standby pools (the entry is gone, or its hosts moved).
func (e *poolEntry) closeReplicas() []*pool.Pool {
	e.mu.Lock()
	rs := e.replicas
	e.replicas = nil
	e.mu.Unlock()
	closed := make([]*pool.Pool, 0, len(rs))
	for _, p := range rs {
		p.Close()
		closed = append(closed, p)
	}
	return closed
}

// reconfigureReplicas applies a reload to e's standby pools.
func (ps *pools) reconfigureReplicas(cfg *config.Config, e *poolEntry, db *config.Database) {
	e.mu.Lock()
	rs := make(map[*pool.Host]*pool.Pool, len(e.replicas))
	for h, p := range e.replicas {
		rs[h] = p
	}
	e.mu.Unlock()
	for h, p := range rs {
		if err := p.Reconfigure(ps.replicaOptions(cfg, e, db, h)); err != nil {
			ps.s.log.Warn("reconfigure standby pool", zap.Error(err))
		}
	}
}

// conns returns the live server connections of e's pool and of its standby pools.
func (e *poolEntry) conns() []*pool.Conn {
	out := e.pool.Conns()
	for _, p := range e.replicaPools() {
		out = append(out, p.Conns()...)
	}
	// A connection closed already (an idle one closed to make room for a replication
	// client's, its reader not yet ended) stays in its pool until its reader has ended;
	// the server has lost it: SHOW SERVERS, as PgBouncer's, lists it no more.
	return slices.DeleteFunc(out, func(c *pool.Conn) bool { return c.State() == pool.StateClosed })
}
