package pool

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Endpoint is one server address: a host name, IP address or unix socket directory, and
// a port.
type Endpoint struct {
	Host string
	Port int
}

// String is host:port, IPv6 addresses in brackets.
func (e Endpoint) String() string {
	if strings.Contains(e.Host, ":") {
		return "[" + e.Host + "]:" + strconv.Itoa(e.Port)
	}
	return e.Host + ":" + strconv.Itoa(e.Port)
}

// Host is one server of a Cluster and what pgmux knows of it. mu guards the fields below.
type Host struct {
	Endpoint
	cl   *Cluster
	kick chan struct{} // wakes the host's checker at once (buffered, one)

	mu       sync.Mutex
	role     Role
	up       bool      // the last contact worked
	down     bool      // the last contact failed
	suspect  bool      // a server connection broke since the last contact that worked
	checked  time.Time // last contact, either way
	lsn      uint64    // a primary's WAL insert position, a standby's replayed one (0 unknown)
	flushed  uint64    // a primary's flushed WAL position (0 unknown)
	lsnAsked time.Time // when the check that read lsn was sent
	lagMs    int64     // a standby's replay lag in milliseconds (walhist.go); -1 unknown
	lastErr  string
	switches int // role changes seen
	// Read-your-writes (replica.go): the highest replayed position the poller saw, the
	// clients waiting for a position, whether the poller runs. pollConn belongs to the
	// running poller (one at a time), and to Close after the pollers stopped.
	replayed uint64
	reads    atomic.Uint64 // not guarded: NoteRead
	waiters  []*replayWaiter
	polling  bool
	shut     bool // the cluster is closed: no more pollers
	pollConn *checkConn
	// seen is the standby's last lag measure against the primary's positions; guarded by
	// Cluster.histMu, not mu.
	seen replaySeen
}

// HostState is a snapshot of a Host for SHOW and metrics.
type HostState struct {
	Endpoint
	Role     Role
	Up       bool // reachable at the last contact
	Down     bool // unreachable at the last contact
	Checked  time.Time
	LagMs    int64 // replay lag of a standby; 0 for a primary; -1 unknown
	LagBytes int64 // WAL a standby has still to replay, against the primary's position; -1 unknown
	LSN      uint64
	Err      string
	Reads    uint64 // reads sent to it as a standby (NoteRead)
	Waiting  int    // clients waiting for it to replay their last commit
	flushed  uint64 // a primary's flushed WAL position: what LagBytes is measured against
}

// State returns a snapshot of the host.
func (h *Host) State() HostState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := HostState{Endpoint: h.Endpoint, Role: h.role, Up: h.up, Down: h.down, Checked: h.checked,
		LagMs: h.lagMs, LagBytes: -1, LSN: max(h.lsn, h.replayed), Err: h.lastErr,
		Reads: h.reads.Load(), Waiting: len(h.waiters), flushed: h.flushed}
	if h.role == RolePrimary {
		st.LagMs, st.LagBytes = 0, 0
	}
	return st
}

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	Endpoints []Endpoint
	// Interval is how often each host is checked while the cluster has a reachable
	// primary; FastInterval while it has none (a failover is under way). Defaults: 1 s
	// and 100 ms.
	Interval, FastInterval time.Duration
	Logger                 *zap.Logger
}

// Cluster is the set of servers behind one or more [databases] entries: their roles,
// reachability and replication lag, learned for free from every login (in_hot_standby)
// and from ParameterStatus messages, and by one checker per host that, once Watch is
// called, asks each host on one connection of its own every Interval (and at once when
// a server connection to any host fails). Pools use it to choose where a new connection
// goes (target_session_attrs, load_balance_hosts).
//
// Owners: hosts, opts and log are set by NewCluster and only read afterwards; rr and
// last are atomics any dialing goroutine updates; mu guards changed, pools, login,
// timeout and closed (stop is closed under it, once); each Host guards its own state
// (Host.mu); histMu guards hist, the primary's recorded WAL positions that standbys' lag
// is measured against, and each Host's seen; the read-your-writes fields are described
// where they are declared. epoch is the zero of the cluster's clock (clock). The
// goroutines it starts (checkers, pollers, the WAL-position fetcher) are counted in wg,
// added to only while the cluster is open, and Close waits for them.
type Cluster struct {
	hosts []*Host
	opts  ClusterOptions
	rr    atomic.Uint32 // round-robin turn
	last  atomic.Int32  // the host that last worked, for load_balance_hosts=disable
	log   *zap.Logger

	mu      sync.Mutex
	changed chan struct{}      // closed and replaced when a role or reachability changes
	pools   map[*Pool]struct{} // pools that dialed the cluster: woken when a host comes up
	login   func() *Target
	timeout time.Duration
	stop    chan struct{}
	closed  bool
	wg      sync.WaitGroup

	epoch  time.Time
	histMu sync.Mutex
	hist   walHistory

	// The primary's WAL position for read-your-writes (replica.go): lsnMu guards the next
	// read's callers, whether the fetcher runs and lsnShut; lsnConn and lsnHost belong to
	// the running fetcher (one at a time), and to Close after it stopped.
	lsnMu      sync.Mutex
	lsnNext    *lsnFetch
	lsnRunning bool
	lsnConn    *checkConn
	lsnHost    *Host
	lsnShut    bool // set by Close
}

// NewCluster returns a cluster of the given servers; nothing runs until Watch.
func NewCluster(opts ClusterOptions) *Cluster {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.FastInterval <= 0 {
		opts.FastInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	cl := &Cluster{opts: opts, log: opts.Logger, changed: make(chan struct{}), stop: make(chan struct{}),
		epoch: time.Now()}
	for _, e := range opts.Endpoints {
		cl.hosts = append(cl.hosts, &Host{Endpoint: e, cl: cl, kick: make(chan struct{}, 1), lagMs: -1})
	}
	return cl
}

// Hosts returns the cluster's hosts in configuration order.
func (cl *Cluster) Hosts() []*Host { return cl.hosts }

// States returns a snapshot of every host, with each standby's lag in bytes against the
// primary's last known flushed position (its insert position when that is unknown), as
// its lag in time is (walhist.go).
func (cl *Cluster) States() []HostState {
	out := make([]HostState, len(cl.hosts))
	var primary uint64
	for i, h := range cl.hosts {
		out[i] = h.State()
		if out[i].Role == RolePrimary && out[i].Up {
			pos := out[i].flushed
			if pos == 0 {
				pos = out[i].LSN
			}
			primary = max(primary, pos)
		}
	}
	for i := range out {
		if st := &out[i]; st.Role == RoleStandby && primary != 0 && st.LSN != 0 {
			st.LagBytes = max(int64(primary)-int64(st.LSN), 0)
		}
	}
	return out
}

// Changed returns a channel closed at the next change of a host's role or reachability.
func (cl *Cluster) Changed() <-chan struct{} {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.changed
}

// HasPrimary reports whether a reachable host is known to be the primary.
func (cl *Cluster) HasPrimary() bool {
	for _, h := range cl.hosts {
		if h.primaryUp() {
			return true
		}
	}
	return false
}

// primaryUp reports whether h is known as the primary and reachable.
func (h *Host) primaryUp() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.role == RolePrimary && !h.down
}

// broadcast tells of a change of a host's role or reachability; up means a host answered
// (it came back, or changed role): the pools' queued clients try it at once.
func (cl *Cluster) broadcast(up bool) {
	cl.mu.Lock()
	close(cl.changed)
	cl.changed = make(chan struct{})
	var pools []*Pool
	if up {
		pools = make([]*Pool, 0, len(cl.pools))
		for p := range cl.pools {
			pools = append(pools, p)
		}
	}
	cl.mu.Unlock()
	for _, p := range pools {
		p.retryAll()
	}
}

// follow makes p's waiters retry when a host of cl comes up or changes role. A dial
// that ends after Close (a pool replaced by a reload, a readiness check's pool closed
// once the check gave up on its login) leaves p with no cluster: Close unfollowed, and a
// closed pool left among cl's would stay referenced for cl's life. Close sets closed
// before it takes p.cluster, so one of the two sees the other's step and unfollows.
func (p *Pool) follow(cl *Cluster) {
	if p.cluster.Load() == cl {
		return
	}
	if old := p.cluster.Swap(cl); old != nil && old != cl {
		old.unfollow(p)
	}
	cl.mu.Lock()
	if cl.pools == nil {
		cl.pools = make(map[*Pool]struct{})
	}
	cl.pools[p] = struct{}{}
	cl.mu.Unlock()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.cluster.CompareAndSwap(cl, nil)
		cl.unfollow(p)
	}
}

func (cl *Cluster) unfollow(p *Pool) {
	cl.mu.Lock()
	delete(cl.pools, p)
	cl.mu.Unlock()
}

// retryAll ends server_login_retry's hold and wakes as many queued clients as the pool
// has room to dial for: a host of its cluster came up or changed role, and those that
// queued after failed dials (a failover) are to try it now rather than at their next
// retry.
func (p *Pool) retryAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFail = time.Time{}
	n := min(p.waiters.Len(), p.opts.Size-p.total)
	if n <= 0 || p.closed {
		return
	}
	for range n {
		p.waiters.pop().give(nil)
	}
}

// Kick asks every host's checker to check now (a server connection failed: the primary
// may be gone). Kicks coalesce.
func (cl *Cluster) Kick() {
	for _, h := range cl.hosts {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// noteRole records a role learned at login, from a ParameterStatus or from a check.
func (h *Host) noteRole(r Role) {
	if r == RoleUnknown {
		return
	}
	h.mu.Lock()
	old, wasDown := h.role, h.down
	h.role, h.up, h.down, h.suspect = r, true, false, false
	if old != r && old != RoleUnknown {
		h.switches++
	}
	h.mu.Unlock()
	if old != r || wasDown {
		if old != RoleUnknown && old != r {
			h.cl.log.Info("server role changed", zap.Stringer("host", h.Endpoint),
				zap.Stringer("from", old), zap.Stringer("to", r))
		}
		h.cl.broadcast(true)
	}
}

// noteDown records a failed contact; the role is kept (a restarted server usually comes
// back as what it was), but routing treats the host as unreachable until it answers.
func (h *Host) noteDown(err error) {
	h.mu.Lock()
	was := h.down
	h.up, h.down, h.checked, h.lastErr = false, true, time.Now(), err.Error()
	h.mu.Unlock()
	if !was {
		h.cl.log.Warn("server unreachable", zap.Stringer("host", h.Endpoint), zap.Error(err))
		h.cl.broadcast(false)
	}
	h.cl.Kick()
}

// candidates returns the hosts a new connection should try, best first: hosts known to
// fit a and reachable, then hosts of unknown role, then fitting hosts that failed last
// time, then hosts known not to fit (their role may have changed since the last check;
// the login check has the last word). Within a tier, round-robin starts at the next host
// each time; with load_balance_hosts=disable, at the host that last worked.
func (cl *Cluster) candidates(a SessionAttrs, b Balance) []*Host {
	n := len(cl.hosts)
	start := int(cl.last.Load())
	if b == BalanceRoundRobin {
		start = int((cl.rr.Add(1) - 1) % uint32(n))
	}
	var tiers [4][]*Host
	for i := range n {
		h := cl.hosts[(start+i)%n]
		h.mu.Lock()
		role, down := h.role, h.down
		h.mu.Unlock()
		tiers[tierOf(a, role, down)] = append(tiers[tierOf(a, role, down)], h)
	}
	out := make([]*Host, 0, n)
	for _, t := range tiers {
		out = append(out, t...)
	}
	return out
}

// tierOf ranks a host for candidates: 0 best, 3 worst.
func tierOf(a SessionAttrs, role Role, down bool) int {
	if a == AttrsPreferStandby {
		switch {
		case down:
			return 3
		case role == RoleStandby:
			return 0
		case role == RoleUnknown:
			return 1
		}
		return 2
	}
	fits, sure := a.wants(role)
	switch {
	case fits && !down:
		return 0
	case fits:
		return 2
	case !sure:
		return 1
	}
	return 3
}

// worked notes that a connection to h succeeded (load_balance_hosts=disable stays there).
func (cl *Cluster) worked(h *Host) {
	for i, x := range cl.hosts {
		if x == h {
			cl.last.Store(int32(i))
			return
		}
	}
}

// at returns a copy of t aimed at h.
func (t *Target) at(h *Host) *Target {
	ht := *t
	ht.Host, ht.Port = h.Host, h.Port
	if t.TLS != nil && t.TLS.ServerName == t.Host {
		ht.TLS = t.TLS.Clone()
		ht.TLS.ServerName = h.Host
	}
	return &ht
}

// hostErrors are the failures of one connection attempt over several hosts.
type hostErrors []error

func (e hostErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e hostErrors) Unwrap() []error { return e }

// dialTarget opens a server connection for t: on t's host, or, with a Cluster, on the
// first of its candidates that accepts the login and fits t.Attrs. timeout bounds each
// host's attempt (server_connect_timeout), as libpq's connect_timeout does.
func dialTarget(ctx context.Context, p *Pool, t *Target, timeout time.Duration) (*Conn, error) {
	if t.Cluster == nil {
		return dialHost(ctx, p, t, nil, timeout)
	}
	if t.Only != nil {
		return dialHost(ctx, p, t.at(t.Only), t.Only, timeout)
	}
	var errs hostErrors
	for _, h := range t.Cluster.candidates(t.Attrs, t.Balance) {
		c, err := dialHost(ctx, p, t.at(h), h, timeout)
		if err == nil {
			t.Cluster.worked(h)
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || answeredForAll(err) {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errs
}

// answeredForAll reports a server's refusal that every host of the cluster would give
// too (a wrong password, an unknown database): trying the next host only repeats it.
func answeredForAll(err error) bool {
	var pe *pgerr.Error
	return errors.As(err, &pe) && pe.Code != pgerr.CannotConnectNow && !errors.Is(err, ErrWrongRole)
}

// dialHost logs in to one host and checks its role against t.Attrs.
func dialHost(ctx context.Context, p *Pool, t *Target, h *Host, timeout time.Duration) (*Conn, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
	}
	c, err := dialConn(ctx, p, t)
	if err != nil {
		var pe *pgerr.Error
		if h != nil && (!errors.As(err, &pe) || pe.Code == pgerr.CannotConnectNow) {
			h.noteDown(err)
		}
		return nil, err
	}
	role, err := t.Attrs.accept(c.Params)
	if h != nil {
		h.noteRole(role)
		c.host, c.attrs = h, t.Attrs
	}
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	return c, nil
}

// Host returns the cluster host the connection is on, or nil for a single-host target.
func (c *Conn) Host() *Host { return c.host }

// NoteParameter tells the connection about a ParameterStatus the server sent, once
// Params has it: Reported's copy follows it, and so does the connection's host, as
// PostgreSQL 14+ reports in_hot_standby off on a standby's sessions once it is promoted.
// The caller owns Params (the reader, or the lessee during its lease).
func (c *Conn) NoteParameter(name, value string) {
	c.noteReported(name, value)
	if c.host == nil || name != "in_hot_standby" {
		return
	}
	if value == "on" {
		c.host.noteRole(RoleStandby)
	} else {
		c.host.noteRole(RolePrimary)
	}
}

// noteEnd runs when the connection's reader exits: a connection that broke without
// pgmux closing it may mean its server is gone.
func (c *Conn) noteEnd() {
	if !c.closing.Load() {
		c.NoteBroken()
	}
}

// NoteBroken reports that the connection broke (or its server said it is ending it): the
// host's other idle connections are not handed out until the host answers again, and
// every host of the cluster is checked now (the primary may be gone).
func (c *Conn) NoteBroken() {
	if c.host == nil {
		return
	}
	c.host.mu.Lock()
	c.host.suspect = true
	c.host.mu.Unlock()
	c.host.cl.Kick()
}

// unfit reports an idle connection not to hand out: its host was found down since (or
// another of its connections broke and it has not answered since), or
// its role changed so that it no longer fits what the pool asked for (a primary demoted,
// a standby promoted for a standby pool).
func (c *Conn) unfit() bool {
	if c.host == nil {
		return false
	}
	c.host.mu.Lock()
	role, down := c.host.role, c.host.down || c.host.suspect
	c.host.mu.Unlock()
	if down {
		return true
	}
	fits, sure := c.attrs.wants(role)
	return !fits && sure
}

// ClearBackoff lets new connections be tried at once after a failure, and wakes a
// waiter to try (a failover found a new primary).
func (p *Pool) ClearBackoff() {
	p.mu.Lock()
	p.lastFail = time.Time{}
	p.mu.Unlock()
	p.wakeWaiters()
}
