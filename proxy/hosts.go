package proxy

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/console"
)

// clusters holds a pool.Cluster per distinct host list of the [databases] entries that
// name several hosts: every entry (and pool) with the same hosts shares what pgmux knows
// of their roles. mu guards byKey.
type clusters struct {
	log   *zap.Logger
	mu    sync.Mutex
	byKey map[string]*pool.Cluster
}

func newClusters(log *zap.Logger) *clusters {
	return &clusters{log: log, byKey: make(map[string]*pool.Cluster)}
}

// multiHost reports whether db names more than one host.
func multiHost(db *config.Database) bool { return strings.Contains(db.Host, ",") }

// forDB returns the cluster of db's hosts, creating it on first use; nil for an entry
// with one host.
func (cs *clusters) forDB(db *config.Database) *pool.Cluster {
	if !multiHost(db) {
		return nil
	}
	key := db.HostKey()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cl, ok := cs.byKey[key]; ok {
		return cl
	}
	var eps []pool.Endpoint
	for _, e := range db.Endpoints() {
		eps = append(eps, pool.Endpoint{Host: e.Host, Port: e.Port})
	}
	cl := pool.NewCluster(pool.ClusterOptions{Endpoints: eps, Logger: cs.log.With(zap.String("hosts", db.Host))})
	cs.byKey[key] = cl
	return cl
}

// aim points t at db's hosts: the cluster and target_session_attrs, load_balance_hosts.
// Values were checked when the configuration was loaded.
func (cs *clusters) aim(t *pool.Target, db *config.Database) {
	t.Attrs, _ = pool.ParseSessionAttrs(db.TargetSessionAttrs)
	t.Balance, _ = pool.ParseBalance(db.LoadBalanceHosts)
	t.Cluster = cs.forDB(db)
}

// retain stops the clusters no configured database or open pool uses any more.
func (cs *clusters) retain(keys map[string]bool) {
	cs.mu.Lock()
	var gone []*pool.Cluster
	for k, cl := range cs.byKey {
		if !keys[k] {
			gone = append(gone, cl)
			delete(cs.byKey, k)
		}
	}
	cs.mu.Unlock()
	for _, cl := range gone {
		cl.Close()
	}
}

// closeAll stops every cluster's checkers.
func (cs *clusters) closeAll() { cs.retain(nil) }

// all returns the clusters by key.
func (cs *clusters) all() map[string]*pool.Cluster {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[string]*pool.Cluster, len(cs.byKey))
	for k, cl := range cs.byKey {
		out[k] = cl
	}
	return out
}

// hostsSummary is SHOW DATABASES' host_roles: each host with its role, lag and
// reachability, in configuration order ("" for an entry with one host).
func (cs *clusters) hostsSummary(db *config.Database) (string, any) {
	if !multiHost(db) {
		return "", nil
	}
	cs.mu.Lock()
	cl := cs.byKey[db.HostKey()]
	cs.mu.Unlock()
	if cl == nil {
		return "", nil
	}
	var parts []string
	var maxLag any
	for _, st := range cl.States() {
		parts = append(parts, st.Endpoint.String()+" "+hostStatus(st))
		if st.Role == pool.RoleStandby && st.LagMs >= 0 {
			if l, ok := maxLag.(int64); !ok || st.LagMs > l {
				maxLag = st.LagMs
			}
		}
	}
	return strings.Join(parts, ", "), maxLag
}

// hostStatus is a host's role, "(down)" when its last contact failed.
func hostStatus(st pool.HostState) string {
	s := st.Role.String()
	if st.Down {
		s += " (down)"
	}
	return s
}

// connRole is SHOW SERVERS' role and replication_lag_ms for a server connection: of its
// cluster host, NULLs for a single-host database.
func connRole(c *pool.Conn) (any, any) {
	h := c.Host()
	if h == nil {
		return nil, nil
	}
	st := h.State()
	var lag any
	if st.LagMs >= 0 {
		lag = st.LagMs
	}
	return st.Role.String(), lag
}

// showHosts is pgmux's SHOW HOSTS: one row per server of every multi-host database, with
// what pgmux knows of it.
func (s *Server) showHosts() []byte {
	r := console.NewResult(nil, console.Text("databases"), console.Text("host"), console.Int4("port"), console.Text("role"),
		console.Text("state"), console.Int8("replication_lag_ms"), console.Int8("replication_lag_bytes"),
		console.Text("wal_lsn"), console.Int8("checked_ms_ago"), console.Text("last_error"),
		console.Int8("standby_reads"), console.Int4("ryw_waiting"))
	cfg := s.Config()
	users := make(map[string][]string)
	for name, db := range cfg.Databases {
		if multiHost(db) {
			users[db.HostKey()] = append(users[db.HostKey()], name)
		}
	}
	all := s.pools.hosts.all()
	now := time.Now()
	for _, key := range sortedKeys(all) {
		dbs := users[key]
		slices.Sort(dbs)
		for _, st := range all[key].States() {
			state := "unknown"
			switch {
			case st.Down:
				state = "down"
			case st.Up:
				state = "up"
			}
			var lag, lagBytes, lsn, ago any
			if st.LagMs >= 0 {
				lag = st.LagMs
			}
			if st.LagBytes >= 0 {
				lagBytes = st.LagBytes
			}
			if st.LSN != 0 {
				lsn = strconv.FormatUint(st.LSN>>32, 16) + "/" + strconv.FormatUint(st.LSN&0xffffffff, 16)
			}
			if !st.Checked.IsZero() {
				ago = now.Sub(st.Checked).Milliseconds()
			}
			r.Row(strings.Join(dbs, ","), st.Host, st.Port, st.Role.String(), state, lag, lagBytes,
				lsn, ago, nullIfEmpty(st.Err), int64(st.Reads), st.Waiting)
		}
	}
	return r.Done("SHOW")
}
