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

// readyTimeout bounds one readiness probe's connection attempts.
const readyTimeout = 2 * time.Second

// MetricsHandler serves /metrics from the server's gatherer, /healthz (200 while the
// process is up) and /readyz (200 while listening and every configured database is
// reachable; 503 with the reason otherwise).
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

// Ready reports nil when pgmux accepts clients and every configured database (not the
// "*" fallback) is reachable: one of its pools holds a server, or a pooled connect (or,
// for a database no client has used yet, a TCP connect to its host) succeeds.
func (s *Server) Ready(ctx context.Context) error {
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
	var problems []string
	for _, name := range sortedKeys(cfg.Databases) {
		if name == "*" {
			continue
		}
		if err := s.reachable(ctx, name); err != nil {
			problems = append(problems, fmt.Sprintf("database %s: %v", name, err))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func (s *Server) reachable(ctx context.Context, db string) error {
	entries := s.matching(db)
	for _, e := range entries {
		if st := e.pool.Stats(); st.Connected > 0 {
			return nil
		}
	}
	var last error
	for _, e := range entries {
		// A pool waiting out server_login_retry after a failure answers with it at once:
		// an Acquire would queue until the probe's deadline, past a health checker's own.
		if err := e.pool.BackingOff(); err != nil {
			last = err
			continue
		}
		c, err := e.pool.Acquire(ctx, &idleLessee{})
		if err == nil {
			c.Release(false)
			return nil
		}
		last = err
	}
	if last != nil {
		return last
	}
	// Any of a multi-host entry's hosts will do.
	for _, e := range s.Config().Databases[db].Endpoints() {
		network, addr := (&pool.Target{Host: e.Host, Port: e.Port}).Network()
		var dialer net.Dialer
		nc, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			return nc.Close()
		}
		last = err
	}
	return last
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
