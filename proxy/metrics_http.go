package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// httpEndpoint is the metrics_addr listener: /metrics, /healthz and /readyz.
//
// Owners: gather is set by setupMetrics before anything serves and only read afterwards;
// mu guards ln and srv, which listenHTTP sets and serveHTTP, MetricsAddr and closeHTTP
// read from their own goroutines.
type httpEndpoint struct {
	mu     sync.Mutex
	ln     net.Listener
	srv    *http.Server
	gather prometheus.Gatherer
}

// readyTimeout is a readiness probe's time limit: /readyz answers within it, whatever
// its checks wait for (Ready).
const readyTimeout = 2 * time.Second

// readyCheckTimeout bounds one database's server check (checkDB): a little under
// readyTimeout, so that the probe that began the check has its result, and the reason,
// before its own limit.
const readyCheckTimeout = readyTimeout * 9 / 10

// MetricsHandler serves /metrics from the server's gatherer, /healthz (200 while the
// process is up) and /readyz (200 while pgmux accepts clients and every configured
// database can serve them now, see Ready; 503 with the reasons otherwise).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.http.gather, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.log)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// readyCacheFor is how long a database's readiness check is reused: health checkers
// polling /readyz (several a second when a platform and a sidecar both poll) then cost
// PostgreSQL one check a second at most.
const readyCacheFor = time.Second

// readyCache holds each configured database's server check: the one running, else the
// last one, reused for readyCacheFor after it ended. mu guards checks.
type readyCache struct {
	mu     sync.Mutex
	checks map[string]*readyCheck
}

// readyCheck is one server check of a database. Owners: began and done are set before
// the check is shared, then only read; the goroutine running the check owns err and at
// (when it ended) until it closes done, and the probes waiting for it read them after.
type readyCheck struct {
	began time.Time
	done  chan struct{}
	err   error
	at    time.Time
}

// result waits until ctx is done for db's check: the last one while it is fresh, the one
// running, else a new one, which check runs on a goroutine of its own within its own
// limit, whoever waits for it. A probe that gives up on a check leaves it to end on its
// own, and the next probes wait for it instead of beginning another: a database whose
// check hangs has one goroutine on it, not one per probe.
func (rc *readyCache) result(ctx context.Context, db string, check func() error) error {
	rc.mu.Lock()
	c := rc.checks[db]
	if c == nil || c.stale() {
		c = &readyCheck{began: time.Now(), done: make(chan struct{})}
		rc.checks[db] = c
		go func() {
			c.err = check()
			c.at = time.Now()
			close(c.done)
		}()
	}
	rc.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("its server check, begun %v ago, has not finished: %w",
			time.Since(c.began).Round(time.Millisecond), context.Cause(ctx))
	}
}

// stale reports whether c has ended more than readyCacheFor ago.
func (c *readyCheck) stale() bool {
	select {
	case <-c.done:
		return time.Since(c.at) >= readyCacheFor
	default:
		return false
	}
}

// Ready reports nil when pgmux accepts clients and every configured database (not the
// "*" fallback) can serve one now, else the reasons. Not ready: pgmux shutting down or not
// listening; a database held by the console (PAUSE, SUSPEND, KILL) or disabled
// (DISABLE); a database whose server check fails (see checkDB) or does not end by ctx's
// end. The server checks are shared by concurrent probes and cached for readyCacheFor.
//
// Ready answers by ctx's end whatever its steps wait for: it runs them on a goroutine of
// its own (readiness), and one stuck past ctx (on a lock something slow holds) makes the
// answer "did not finish"; the goroutine left behind ends when the step does.
func (s *Server) Ready(ctx context.Context) error {
	err, ok := untilDone(ctx, func() error { return s.readiness(ctx) })
	if !ok {
		return fmt.Errorf("the readiness check did not finish within the probe's time limit: %w", context.Cause(ctx))
	}
	return err
}

// readiness is Ready's work. A database's server check runs within readyCheckTimeout
// from its beginning, ended early by the server's shutdown, not by the probe that began
// it: a probe that stops waiting (its limit, its client gone) cuts the check short for
// none of the probes that share it.
func (s *Server) readiness(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	s.mu.Lock()
	listening := len(s.listeners) > 0
	s.mu.Unlock()
	if !listening {
		return errors.New("not listening")
	}
	cfg := s.Config()
	var names []string
	for _, name := range sortedKeys(cfg.Databases) {
		if name != "*" {
			names = append(names, name)
		}
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		if why := s.console.holdReason(name); why != "" {
			errs[i] = errors.New(why)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ready.result(ctx, name, func() error {
				cctx, cancel := context.WithTimeout(s.console.ctx, readyCheckTimeout)
				defer cancel()
				return s.checkDB(cctx, cfg, name)
			})
		}()
	}
	wg.Wait()
	var problems []string
	for i, err := range errs {
		if err != nil {
			problems = append(problems, fmt.Sprintf("database %s: %v", names[i], err))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// holdReason says why the console holds new work for db (PAUSE, SUSPEND, KILL) or
// refuses its new clients (DISABLE), or "" when it does neither.
func (c *consoleState) holdReason(db string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.suspended:
		return "suspended (SUSPEND)"
	case c.pausedAll || c.paused[db]:
		return "paused (PAUSE)"
	case c.killed[db]:
		return "paused (KILL)"
	case c.disabled[db]:
		return "disabled (DISABLE): new clients are refused"
	}
	return ""
}

// checkDB checks that db can serve a client now (pool.Check): through one of its pools
// that does; for a database no client has used yet, by logging in as its forced user
// (user=) or auth_user through a pool made for the check and closed after it; with
// neither, pgmux has no credentials a client would use, and a startup message as
// readinessUser to one of its hosts (pool.Probe) shows whether PostgreSQL answers logins
// there: a password request, or a login or refusal of that user, will do.
func (s *Server) checkDB(ctx context.Context, cfg *config.Config, db string) error {
	var last error
	for _, e := range s.matching(db) {
		err := e.pool.Check(ctx)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if last != nil {
		return last
	}
	d := cfg.Databases[db]
	if d == nil {
		return errors.New("no such database")
	}
	user := d.User
	if user == "" {
		user = cfg.AuthUser
	}
	if user != "" {
		p, err := s.pools.checkPool(cfg, d, user)
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Check(ctx)
	}
	// Any of a multi-host entry's hosts will do.
	for _, e := range d.Endpoints() {
		if last = pool.Probe(ctx, s.probeTarget(d, e)); last == nil || ctx.Err() != nil {
			break
		}
	}
	return last
}

// readinessUser is the user /readyz's probe (checkDB) names in its startup message, and
// readinessApp its application_name: what PostgreSQL's log shows of it.
const (
	readinessUser = "pgmux_readyz"
	readinessApp  = "pgmux readiness probe"
)

// probeTarget is the probe's target on host e of d, with server TLS as configured.
func (s *Server) probeTarget(d *config.Database, e config.Endpoint) *pool.Target {
	t := &pool.Target{Host: e.Host, Port: e.Port, Database: d.DBName, User: readinessUser,
		Params: pool.Params{{Name: "application_name", Value: readinessApp}}}
	if t.Database == "" {
		t.Database = d.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serverTLSLocked(t)
	return t
}

// listenHTTP opens metrics_addr, when set.
func (s *Server) listenHTTP(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on metrics_addr %s: %w", addr, err)
	}
	h := s.http
	h.mu.Lock()
	h.ln = ln
	h.srv = &http.Server{Handler: s.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	h.mu.Unlock()
	return nil
}

// serveHTTP serves metrics_addr until the server shuts down.
func (s *Server) serveHTTP() {
	h := s.http
	h.mu.Lock()
	ln, srv := h.ln, h.srv
	h.mu.Unlock()
	if ln == nil {
		return
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("metrics endpoint stopped", zap.Error(err))
	}
}

// MetricsAddr returns the address of the metrics_addr listener, or nil.
func (s *Server) MetricsAddr() net.Addr {
	h := s.http
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return nil
	}
	return h.ln.Addr()
}

// closeHTTP stops the metrics endpoint.
func (s *Server) closeHTTP() {
	h := s.http
	h.mu.Lock()
	srv, ln := h.srv, h.ln
	h.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	} else if ln != nil {
		ln.Close()
	}
}

// setupMetrics builds the metrics, registers them, and picks the gatherer /metrics serves:
// Options.Gatherer, else the registerer when it is also a gatherer, else a private registry.
func (s *Server) setupMetrics(opts Options) error {
	s.metrics = metrics.New(metricsView{s})
	s.http = &httpEndpoint{gather: opts.Gatherer}
	s.ready = &readyCache{checks: make(map[string]*readyCheck)}
	reg := opts.Registry
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.http.gather = r, r
	}
	if s.http.gather == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			s.http.gather = g
		} else {
			s.http.gather = prometheus.NewRegistry()
		}
	}
	return s.metrics.Register(reg)
}

// checkPool makes a pool of one connection for user on db, for Ready's check of a
// database no client has used yet; the caller closes it. It is held to user's
// max_user_connections, as ps.transient is, and logs nothing: /readyz's answer carries
// its failure, and a line per probe would flood the log while a database is down. Its
// login is bounded by the check's ctx alone (ConnectTimeout 0), not server_connect_timeout:
// it serves no client after the check, and must not outlive it by 15 s against a server
// that never answers.
func (ps *pools) checkPool(cfg *config.Config, db *config.Database, user string) (*pool.Pool, error) {
	opts := ps.transientOptions(cfg, db, user)
	opts.LogConnections, opts.LogDisconnections, opts.Logger = false, false, zap.NewNop()
	opts.ConnectTimeout = 0
	return pool.New(opts)
}
