package proxy

import (
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// metricsView gives package metrics the figures it reads at each scrape
// (metrics.Source), from the same snapshots SHOW reports.
type metricsView struct{ s *Server }

func (v metricsView) ClientsConnected() int { return int(v.s.nclients.Load()) }

func (v metricsView) Pools() []metrics.Pool {
	snaps := v.s.snapshot()
	out := make([]metrics.Pool, len(snaps))
	for i, p := range snaps {
		t := p.totals
		out[i] = metrics.Pool{Key: metrics.Key{DB: p.key.db, User: p.key.user},
			Linked: p.clActive - p.clIdle, Idle: p.clIdle, Waiting: p.clWaiting, WaitingDirect: p.clWaitingDirect,
			MaxWait: p.maxWaitAll(), Xacts: t.xacts, Queries: t.queries, Received: t.received, Sent: t.sent,
			Assignments: t.assignments}
		if p.entry != nil {
			out[i].Servers = &p.stats
		}
	}
	return out
}

// Pinned counts the clients of each pool that has clients by pin reason (sticky.go).
func (v metricsView) Pinned() []metrics.Pinned {
	counts := make(map[poolKey]*[len(pinNames)]int)
	var keys []poolKey
	for _, sess := range v.s.Sessions() {
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
	out := make([]metrics.Pinned, len(keys))
	for i, k := range keys {
		rs := make([]metrics.Count, len(pinNames))
		for j, name := range pinNames {
			rs[j] = metrics.Count{Reason: name, Clients: counts[k][j]}
		}
		out[i] = metrics.Pinned{Key: metrics.Key{DB: k.db, User: k.user}, Reasons: rs}
	}
	return out
}

func (v metricsView) Hosts() []pool.HostState {
	all := v.s.pools.hosts.all()
	var out []pool.HostState
	for _, key := range sortedKeys(all) {
		out = append(out, all[key].States()...)
	}
	return out
}

func (v metricsView) Prepared() []metrics.Prepared {
	snaps := v.s.preparedSnapshot()
	out := make([]metrics.Prepared, len(snaps))
	for i, p := range snaps {
		out[i] = metrics.Prepared{Key: metrics.Key{DB: p.key.db, User: p.key.user}, Prepared: p.prepared,
			Hits: p.hits, Misses: p.misses, Evictions: p.evictions, Retries: p.retries,
			UnnamedHits: p.unnamedHits, UnnamedMisses: p.unnamedMisses}
	}
	return out
}
