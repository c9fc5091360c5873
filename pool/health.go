package pool

import (
	"context"
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// health follows whether the pool's server can be logged in to, so that a failing server
// is reported once at warn (again at most once a minute while the error stays the same)
// and its recovery once at info, instead of a line per attempt. Guarded by Pool.mu.
type health struct {
	failing  bool
	since    time.Time // the first failure of the current run
	failures int
	lastMsg  string
	lastWarn time.Time
	// network and addr are where the last failed dial went: the probe's target.
	network, addr string
	probing       bool
}

// repeatWarn is how often an unchanged failure is logged again at warn.
const repeatWarn = time.Minute

// probeEvery is how often a pool holding clients back after a failed connect (server_login_retry)
// checks whether the server accepts connections again.
const probeEvery = 200 * time.Millisecond

// noteFailLocked records a failed connect or login to t and returns the log line to write
// once p.mu is released; p.mu is held.
func (p *Pool) noteFailLocked(network, addr string, t *Target, err error) func() {
	h := &p.health
	now := time.Now()
	if !h.failing {
		h.failing, h.since, h.failures = true, now, 0
	}
	h.failures++
	h.network, h.addr = network, addr
	msg := err.Error()
	warn := msg != h.lastMsg || now.Sub(h.lastWarn) >= repeatWarn
	h.lastMsg = msg
	if warn {
		h.lastWarn = now
	}
	log, retry, failures := p.opts.Logger, p.opts.LoginRetry, h.failures
	fields := []zap.Field{zap.String("addr", addr), zap.String("server_user", t.User),
		zap.String("server_db", t.Database), zap.Int("failures", failures)}
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		// PostgreSQL answered: a wrong password in auth_file/[databases], a missing
		// database or role. Clients get the error at once; nothing is retried.
		fields = append(fields, zap.String("code", pe.Code), zap.String("error", pe.Message))
		if pe.Detail != "" {
			fields = append(fields, zap.String("detail", pe.Detail))
		}
		return func() {
			if warn {
				log.Warn("server login failed: PostgreSQL refused pgmux's login", fields...)
			} else {
				log.Debug("server login failed again", fields...)
			}
		}
	}
	if !transient(err) {
		fields = append(fields, zap.Error(err))
		return func() {
			if warn {
				log.Warn("server login failed: pgmux cannot log in with what it has", fields...)
			} else {
				log.Debug("server login failed again", fields...)
			}
		}
	}
	fields = append(fields, zap.Error(err), zap.Duration("retry_after", retry))
	return func() {
		if warn {
			log.Warn("server unreachable: cannot connect or log in", fields...)
		} else {
			log.Debug("server still unreachable", fields...)
		}
	}
}

// noteOKLocked records a successful login and returns the recovery line to write once
// p.mu is released, or nil; p.mu is held.
func (p *Pool) noteOKLocked(addr string) func() {
	h := &p.health
	if !h.failing {
		return nil
	}
	failures, down := h.failures, time.Since(h.since)
	p.health = health{}
	log := p.opts.Logger
	return func() {
		log.Info("server reachable again", zap.String("addr", addr), zap.Int("failures", failures),
			zap.Duration("down_for", down.Round(time.Millisecond)))
	}
}

// transient reports whether a failed connect or login is worth retrying after
// server_login_retry: the server could not be reached, or answered that it cannot take
// connections yet (57P03: starting up, shutting down, in recovery). Other answers from
// the server (a wrong password, a missing database) go to the clients at once, and so do
// logins pgmux itself cannot do (no credential for the method the server asks for, a
// SCRAM exchange that fails, an unexpected message): retrying cannot help until a reload
// changes the configuration. A network error inside the login (a reset during the TLS
// handshake) stays transient.
func transient(err error) bool {
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return pe.Code == pgerr.CannotConnectNow
	}
	var ne net.Error
	return !errors.Is(err, ErrServerLogin) || errors.As(err, &ne)
}

// queueAgain decides, after a failed dial by a client that had queued through
// server_login_retry, whether it queues again rather than failing: the failure is
// transient, server_login_retry holds new connections back again, and the client's wait
// limit has not passed. The first client to find the server down gets the error at once.
func (p *Pool) queueAgain(ctx context.Context, deadline time.Time, err error) bool {
	if !transient(err) || ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && p.backingOffLocked()
}

// startProbeLocked starts the probe when clients queue while server_login_retry holds new
// connections back; p.mu is held.
func (p *Pool) startProbeLocked() {
	if p.health.probing || p.health.network == "" || p.closed {
		return
	}
	p.health.probing = true
	go p.probe(p.health.network, p.health.addr)
}

// probe checks with a bare TCP (or unix socket) connect whether the server accepts
// connections again while clients wait out server_login_retry, and lets them dial as
// soon as it does: a client then waits for the server, not for the rest of the retry
// interval. It sends nothing (PostgreSQL does not log an empty connection) and stops when
// nobody waits, the interval is over or the pool closes.
func (p *Pool) probe(network, addr string) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.mu.Lock()
			p.health.probing = false
			p.mu.Unlock()
			return
		case <-t.C:
		}
		p.mu.Lock()
		if p.closed || p.waiters.Len() == 0 || !p.backingOffLocked() {
			p.health.probing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		nc, err := net.DialTimeout(network, addr, probeEvery)
		if err != nil {
			continue
		}
		_ = nc.Close()
		p.mu.Lock()
		p.lastFail = time.Time{}
		p.health.probing = false
		p.mu.Unlock()
		p.wakeWaiters()
		return
	}
}
