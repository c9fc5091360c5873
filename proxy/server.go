package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/proxy/hba"
	"github.com/pgmux/pgmux/proxy/listenmux"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// Options configure a Server.
type Options struct {
	Config      *config.Config
	Credentials map[string]config.Credential
	Logger      *zap.Logger

	// Registry receives pgmux's Prometheus metrics; Gatherer is what metrics_addr's
	// /metrics serves (default: Registry, when it is a Gatherer). With no Registry the
	// metrics go to a private registry that /metrics still serves.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// Reload re-reads the configuration from disk and applies it with Server.Reload; the
	// admin console's RELOAD calls it. Nil makes RELOAD fail.
	Reload func() error
	// OnShutdown is called (on its own goroutine) by the admin console's SHUTDOWN; the
	// host should stop as on the matching signal: SIGQUIT (ShutdownImmediate), SIGINT
	// (ShutdownWaitForServers) or SIGTERM (ShutdownWaitForClients). Nil makes the Server
	// stop itself.
	OnShutdown func(ShutdownMode)
	// Version is reported by SHOW VERSION.
	Version string
	// ApplyLogging, when set, is called by Reload (RELOAD, SIGHUP, the console's SET) with
	// the configuration about to be applied, to set the log level from verbose and reopen
	// logfile; an error fails the reload.
	ApplyLogging func(*config.Config) error
	// Loops is how many client loops to run (clientloop.go); 0: one per P (GOMAXPROCS).
	// Tests set it to run several loops whatever the machine's cores.
	Loops int
}

// Server accepts clients and relays them to pooled server connections.
//
// Owners: every goroutine of the process reads it. log and applyLogging are set by New
// and never change; mu guards the fields from cfg to clients (configuration,
// credentials, caches, listeners, the client registry); the atomics are used without it;
// pools, hub, parker, console, metrics and http are made once in New and guard their own
// state; wg counts the client goroutines, and Stop waits on it (wgClosed).
type Server struct {
	log          *zap.Logger
	applyLogging func(*config.Config) error
	// reloadMu makes each configuration change (RELOAD, SIGHUP, the console's SET) one
	// step: it reads the configuration in force, derives the next and applies it to the
	// pools without another change in between, which could otherwise be lost or leave the
	// pools built from a configuration SHOW CONFIG does not show.
	reloadMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	cfg       *config.Config
	creds     map[string]config.Credential
	scramKeys map[string]scramKeys // user -> keys recovered from a client's SCRAM proof
	verifiers map[string]cachedVerifier
	// parsedSecrets: auth_file SCRAM secrets, parsed (auth.go scramSecret); emptied at reload
	parsedSecrets map[string]auth.Verifier
	authCache     map[string]authQueryResult // auth_query answers (authquery.go)
	hba           hba.Rules                  // auth_hba_file, when auth_type = hba (hba.go)
	hbaErr        error
	tlsConf       *tls.Config // client_tls_* loaded (clientTLSConfig); nil when off
	tlsDirect     *tls.Config // tlsConf for direct TLS (sslnegotiation=direct): ALPN "postgresql"
	serverTLS     *tls.Config // server_tls_* loaded (serverTLSConfig), cloned per login; nil when off
	listeners     []net.Listener
	// wgClosed: Stop waits on wg; accept no longer adds to it (a WaitGroup's Add from zero
	// must not race its Wait).
	wgClosed bool
	holding  map[*Session]struct{} // clients waiting during login (Session.awaitPool)
	logins   map[*Session]struct{} // clients logging in (loggingIn), for SUSPEND
	// clients holds every logged-in session, by cancel key: the one registry of clients,
	// so an idle client costs one slot (Sessions, KILL_CLIENT and SHOW CLIENTS walk it).
	clients clientTable
	pools   *pools
	hub     *listenmux.Hub // LISTEN multiplexing (listen.go)
	// loops are the client loops (one per core, clientloop.go), which also hold idle
	// clients without goroutines (park_linux.go); nil when unavailable. A session
	// belongs to one for its life (Session.home).
	loops    []*parker
	clock    atomic.Int64 // unix seconds, advanced by the idle sweep
	doneOnce sync.Once
	cfgP     atomic.Pointer[config.Config] // the configuration in force, read without s.mu
	console  *consoleState                 // admin console state and retired statistics
	metrics  *metrics.Metrics              // proxy/metrics, read through metricsView
	http     *httpEndpoint                 // metrics_addr
	ready    *readyCache                   // /readyz's last checks (Ready)

	stmtEpoch atomic.Uint64 // bumped by DDL and stale-statement errors (ddl.go)
	nclients  atomic.Int64
	nextID    atomic.Uint64
	// activeLoops is how many of loops new clients are placed on (0: all); SetActiveLoops.
	activeLoops atomic.Int32
	// loopLogins counts the logins started on a client loop (loginloop_linux.go).
	loopLogins atomic.Uint64
	// runtimeConns counts the net.Conns in the runtime's poller made for clients after
	// their login: for one that logged in on a loop (toRuntimeConn), or that resumed
	// from its park (reattachLocked).
	runtimeConns atomic.Uint64
	draining     atomic.Bool  // no new clients but console ones (shutdown.go)
	stopping     atomic.Int32 // ShutdownMode+1 once Stop has begun, else 0
	wg           sync.WaitGroup
	done         chan struct{}
}

// scramKeys lets pgmux log in to a server for a user whose auth_file entry is a SCRAM
// verifier: the keys recovered from the client's proof, or the password it sent in clear.
type scramKeys struct {
	clientKey, serverKey []byte
	password             string
}

// New validates the options and builds a Server. Call Listen, then Serve.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("proxy: Options.Config is required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Server{
		log: opts.Logger, applyLogging: opts.ApplyLogging, cfg: opts.Config, creds: opts.Credentials,
		scramKeys: make(map[string]scramKeys),
		holding:   make(map[*Session]struct{}),
		logins:    make(map[*Session]struct{}),
		done:      make(chan struct{}),
	}
	if s.creds == nil {
		s.creds = map[string]config.Credential{}
	}
	tc, err := clientTLSConfig(opts.Config)
	if err != nil {
		return nil, err
	}
	if s.serverTLS, err = serverTLSConfig(opts.Config); err != nil {
		return nil, err
	}
	s.tlsConf, s.tlsDirect = tc, directTLS(tc)
	if opts.Config.AuthType == config.AuthHBA {
		if s.hba, s.hbaErr = loadHBA(opts.Config); s.hbaErr != nil {
			return nil, s.hbaErr
		}
	}
	s.cfgP.Store(opts.Config)
	s.pools = newPools(s)
	s.hub = listenmux.NewHub(s.log)
	s.loops = newLoops(s.log, s.done, opts.Loops)
	s.clock.Store(time.Now().Unix())
	go s.sweepIdle()
	s.console = newConsole(opts)
	if err := s.setupMetrics(opts); err != nil {
		return nil, fmt.Errorf("proxy: register metrics: %w", err)
	}
	return s, nil
}

// Config returns the configuration in force.
func (s *Server) Config() *config.Config {
	return s.cfgP.Load()
}

// Addrs returns the listening addresses.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, ln := range s.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

// Serve accepts clients until the listeners close.
func (s *Server) Serve() error {
	s.mu.Lock()
	lns := s.listeners
	s.mu.Unlock()
	errc := make(chan error, len(lns))
	go s.serveHTTP()
	for _, ln := range lns {
		go func(ln net.Listener) { errc <- s.accept(ln) }(ln)
	}
	var first error
	for range lns {
		if err := <-errc; err != nil && first == nil && !s.draining.Load() {
			first = err
		}
	}
	return first
}

func (s *Server) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		if s.lendLoop(ln) {
			return nil // closed while the loop accepted on it
		}
		nc, fd, err := s.acceptNext(ln)
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: back off and keep serving the others.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			s.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !s.admit() {
			closeAccepted(nc, fd) // the server is past cutting its clients off: nothing serves it
			return nil
		}
		if nc == nil {
			s.loginOnLoop(fd) // a descriptor alone: its login runs on a client loop
			continue
		}
		go s.serveConn(nc)
	}
}

// admit counts a client just accepted in (wg), unless the server is past cutting its
// clients off (then nothing would serve it: the caller closes it).
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wgClosed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) serveConn(nc net.Conn) {
	growLoginStack()
	n := s.nclients.Add(1)
	sess := newSession(s, nc, s.newID())
	sess.run(n)
}

// SetActiveLoops keeps the clients on the first n client loops only (n < 1 or beyond
// their number: all of them). The GOMAXPROCS governor (package proxy/procs) sets it to
// the Ps in use: a loop without a P of its own would share one with another, and each
// then wakes for fewer events. New clients are placed on the active loops, and a client
// already connected moves to its place among them when it next waits for a request
// with no server linked (Session.loopPark): within a request after the change for a
// busy client, at its next request for an idle one.
func (s *Server) SetActiveLoops(n int) { s.activeLoops.Store(int32(max(n, 0))) }

// loopFor is the index of the client loop where the client with this id belongs while
// the active loops are as they are now: the ids go round the active loops.
func (s *Server) loopFor(id uint64) uint32 {
	n := uint64(len(s.loops))
	if a := uint64(s.activeLoops.Load()); a > 0 && a < n {
		n = a
	}
	if n <= 1 {
		return 0
	}
	return uint32(id % n)
}

// LoopClients returns how many clients each client loop holds now (waiting for a
// request or running one on it, logging in on it, or parked idle in its set); nil
// without loops.
func (s *Server) LoopClients() []int {
	if len(s.loops) == 0 {
		return nil
	}
	n := make([]int, len(s.loops))
	for i, p := range s.loops {
		n[i] = p.clients()
	}
	return n
}

// newID returns a new client's id.
func (s *Server) newID() uint64 { return s.nextID.Add(1) }

// sweepEvery is the idle sweep's period, and the resolution of the clock it advances
// (unix seconds).
const sweepEvery = time.Second

// sweepIdle advances the coarse clock every second and kicks clients that have been idle
// long enough to park or to time out (see Session.next).
func (s *Server) sweepIdle() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	// The batch is made once and reused: a new list every tick (8 bytes a client, each
	// second) was nearly all an idle pgmux allocated, and it filled the heap up to the
	// GC's goal between collections, pages the runtime then kept.
	batch := make([]*Session, 0, sweepBatch)
	inUse := make(map[*poolEntry]bool)
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := time.Now().Unix()
		s.clock.Store(now)
		s.sweepOnce(now, batch, inUse)
	}
}

// sweepBatch is how many clients the idle sweep copies out of the registry at a time. A
// list of them all, kept from tick to tick, cost 8 bytes an idle client.
const sweepBatch = 256

// sweepOnce is one tick of the idle sweep (sweepIdle) at now, walking the clients a
// batch at a time (batch: an empty slice of capacity sweepBatch, given back cleared);
// inUse is its scratch map.
func (s *Server) sweepOnce(now int64, batch []*Session, inUse map[*poolEntry]bool) {
	park := parkDelay(s.nclients.Load())
	auto := s.Config().AutodbIdleTimeout > 0 && s.pools.hasAuto()
	for from := 0; ; {
		s.mu.Lock()
		batch, from = s.clients.appendFrom(batch[:0], from, sweepBatch)
		s.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		for _, sess := range batch {
			sess.kickIfIdle(now, park)
			if e := sess.entry; auto && e != nil {
				inUse[e] = true
			}
		}
		s.dropGoneWaiters(batch)
		clear(batch) // ended sessions must not stay reachable until the next tick
	}
	if auto {
		s.expireAutoDatabases(now, inUse)
	}
	clear(inUse)
}

// connDone accounts for a client connection that has ended.
func (s *Server) connDone() {
	s.nclients.Add(-1)
	s.wg.Done()
}

// register records a logged-in session and gives it a cancel key: a random secret and
// the PID that hides its slot under it (clientTable). A key that would make PID 0 (one
// chance in 2^32) is drawn again.
func (s *Server) register(sess *Session) {
	for pid := uint32(0); pid == 0; {
		var b [4]byte
		_, _ = rand.Read(b[:])
		sess.cancelKey = binary.BigEndian.Uint32(b[:])
		s.mu.Lock()
		pid = s.clients.add(sess)
		sess.cancelPID = pid
		s.mu.Unlock()
	}
}

// unregister forgets sess (its cancel key); a session never registered has none.
func (s *Server) unregister(sess *Session) {
	if sess.cancelPID == 0 {
		return
	}
	s.mu.Lock()
	s.clients.remove(sess, sess.cancelPID)
	s.mu.Unlock()
}

// cancel forwards a CancelRequest to the server now serving the session with that key,
// or cancels the command a console session with that key runs.
func (s *Server) cancel(pid uint32, key []byte) {
	if len(key) != 4 {
		return
	}
	s.mu.Lock()
	sess := s.clients.lookup(pid, binary.BigEndian.Uint32(key))
	timeout := s.cfg.CancelWaitTimeout
	s.mu.Unlock()
	if sess == nil || s.console.cancelCommand(sess) {
		return // a console session's command is pgmux's own: nothing goes to a server
	}
	if sess.cancelWait() {
		return // a request waiting inside pgmux is answered 57014 (cancelwait.go)
	}
	c := sess.linkedServer()
	if c == nil {
		return
	}
	// The server must not go to another client before PostgreSQL has taken the
	// request, or it cancels that client's query (or one of pgmux's hidden ones): hold
	// it, then check that it still serves this client.
	c.HoldForCancel()
	defer c.UnholdCancel()
	if sess.linkedServer() != c {
		return // the client's request ended meanwhile: nothing of its runs to cancel
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Cancel(ctx); err != nil {
		sess.log().Warn("forwarding cancel request failed", zap.Error(err), zap.Duration("cancel_wait_timeout", timeout))
	}
}

// Sessions returns the logged-in sessions.
func (s *Server) Sessions() []*Session {
	return s.appendSessions(nil)
}

// appendSessions appends the logged-in sessions to out.
func (s *Server) appendSessions(out []*Session) []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients.appendTo(slices.Grow(out, s.clients.n))
}
