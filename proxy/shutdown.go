package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
)

// Shutdown is the safe shutdown (ShutdownWaitForServers) bounded by ctx: see Stop.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.Stop(ctx, ShutdownWaitForServers)
}

// Close shuts down immediately: every client gets FATAL 57P01 and is closed.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Stop(ctx, ShutdownImmediate)
}

// shutdownContext bounds a shutdown the server runs on its own by shutdown_timeout (0:
// no bound, as PgBouncer waits); an immediate one gets a done context.
func (s *Server) shutdownContext(mode ShutdownMode) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	if mode == ShutdownImmediate {
		cancel()
		return ctx, cancel
	}
	if t := s.Config().ShutdownTimeout; t > 0 {
		cancel()
		return context.WithTimeout(context.Background(), t)
	}
	return ctx, cancel
}

// Stop shuts the server down as mode says (see ShutdownMode) and returns once every
// client is gone and the server connections have ended (up to serversEndWait more); a
// client session still running sessionsEndWait after it was cut is logged and left
// behind (awaitSessions). TCP listeners close at once; the unix socket stays open for
// the admin console until the end, as in PgBouncer. When ctx is done first, the clients still
// connected are cut as in an immediate shutdown, and Stop reports how many: a host turns
// a second signal into an immediate shutdown by cancelling ctx. Every client pgmux closes
// is told why first: FATAL 57P01, as PostgreSQL says on a fast shutdown.
func (s *Server) Stop(ctx context.Context, mode ShutdownMode) error {
	s.stopping.CompareAndSwap(0, int32(mode)+1)
	s.draining.Store(true)
	s.closeListeners(func(ln net.Listener) bool { return ln.Addr().Network() != "unix" })
	s.console.stop()
	defer s.closeHTTP()
	if mode == ShutdownWaitForServers {
		// No server is handed out any more: waiters are told at once (PgBouncer
		// disconnects them eagerly), leased servers close as they are released.
		s.pools.closeAll()
		s.drainFree()
	}
	var err error
	if !s.waitClients(ctx) {
		live := s.normalClients()
		if live > 0 {
			err = fmt.Errorf("shutdown: %d clients cut off: %w", live, context.Cause(ctx))
		}
	}
	// Console clients, and anyone left after ctx: told and closed, all at once.
	s.cutAll()
	s.pools.closeAll() // wakes clients still waiting for a server
	s.mu.Lock()
	s.wgClosed = true // from here on a connection accepted is closed, not served
	s.mu.Unlock()
	s.awaitSessions()
	s.closeListeners(func(net.Listener) bool { return true })
	s.doneOnce.Do(func() { close(s.done) })
	listeners := s.hub.CloseAll()
	s.pools.closeAll()
	// Every client is gone, so every server connection is closed or closing: wait for
	// their readers to end (bounded), so none of them runs or logs after Stop returns.
	if !s.pools.awaitEnded(serversEndWait, listeners...) {
		s.log.Warn("server connections still ending after shutdown", zap.Duration("waited", serversEndWait))
	}
	return err
}

// serversEndWait bounds how long Stop waits for closed server connections' readers.
const serversEndWait = 2 * time.Second

// awaitSessions waits for the client goroutines (wg) once every client was cut, at most
// sessionsEndWait. A cut client has nothing left to wait for, its socket and its server
// being closed, so a session still running then is stuck (a bug) and must not hold the
// shutdown forever: PgBouncer's immediate shutdown exits with every socket closed, and a
// host's second signal, which only makes Stop's ctx done, could not end this wait. The
// sessions still registered are logged and their sockets closed once more, and Stop goes
// on without them.
func (s *Server) awaitSessions() {
	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	t := time.NewTimer(sessionsEndWait)
	defer t.Stop()
	select {
	case <-idle:
		return
	case <-t.C:
	}
	left := s.Sessions()
	for _, sess := range left {
		in := sess.Info()
		s.log.Warn("shutdown: client session did not end; closing its socket and going on without it",
			zap.Uint64("client", in.ID), zap.String("db", in.Database), zap.String("user", in.User),
			zap.Stringer("state", in.State), zap.Duration("waited", sessionsEndWait))
		sess.closed.Store(true)
		sess.closeAndWake()
		if c := sess.linkedServer(); c != nil {
			c.Discard(errShuttingDown) // or awaitEnded would wait for its release
		}
	}
	s.log.Warn("shutdown: gave up waiting for client sessions", zap.Int64("connections", s.nclients.Load()),
		zap.Int("logged_in", len(left)), zap.Duration("waited", sessionsEndWait))
}

// sessionsEndWait bounds how long Stop waits for the client sessions it has cut to end.
// Each of them was told and closed within killMax (killAll), and has only to unwind.
const sessionsEndWait = 2 * time.Second

// closeListeners closes the listeners that match.
func (s *Server) closeListeners(match func(net.Listener) bool) {
	s.mu.Lock()
	var lns []net.Listener
	for _, ln := range s.listeners {
		if match(ln) {
			lns = append(lns, ln)
		}
	}
	s.mu.Unlock()
	// Closed without s.mu: a listener lent to a client loop is dropped by the loop first
	// (rawListener.Close waits for it), and the loop may need s.mu meanwhile.
	for _, ln := range lns {
		ln.Close()
	}
}

// waitClients waits until no client other than console ones is connected, and reports
// whether that happened before ctx was done. Clients that have just said goodbye are
// still given closeGrace to finish when ctx is already done (an immediate shutdown).
func (s *Server) waitClients(ctx context.Context) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var grace <-chan time.Time
	for s.normalClients() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			if grace == nil {
				grace = time.After(closeGrace)
			}
			select {
			case <-t.C:
			case <-grace:
				return false
			}
		}
	}
	return true
}

// errShuttingDown refuses a server to a client during a safe shutdown.
var errShuttingDown = errors.New("pgmux is shutting down")

// closeGrace is how long an immediate shutdown waits for sessions that are ending anyway.
const closeGrace = 100 * time.Millisecond

// cutAll tells every session pgmux is shutting down and closes it, all at once (killAll),
// those still logging in with the others: nothing else ends a login that waits for its
// client before client_login_timeout (a minute by default), and Stop waits for every
// client goroutine (awaitSessions).
func (s *Server) cutAll() {
	killAll(s.cutList(), cutFatal)
}

// cutList returns the logged-in sessions and those still logging in (logins), each once:
// a login registers before its last answer, and is in both sets until that is sent.
func (s *Server) cutList() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.clients.appendTo(make([]*Session, 0, s.clients.n+len(s.logins)))
	if len(s.logins) == 0 {
		return out
	}
	in := make(map[*Session]bool, len(out))
	for _, sess := range out {
		in[sess] = true
	}
	for sess := range s.logins {
		if !in[sess] {
			out = append(out, sess)
		}
	}
	return out
}

// cutFatal is shutdownFatal, for killAll.
func cutFatal(*Session) *pgerr.Error { return shutdownFatal() }

// shutdownFatal is what a client cut by a shutdown hears: PostgreSQL's words for a
// backend terminated by a fast shutdown.
func shutdownFatal() *pgerr.Error {
	return pgerr.Fatal(pgerr.AdminShutdown, "terminating connection due to administrator command").
		WithDetail("pgmux is shutting down.").
		WithHint("Reconnect: another pgmux, or this one once restarted, will serve you.")
}

// cutAtRelease reports whether a client must be closed once it holds no server: a safe
// shutdown (ShutdownWaitForServers) is under way.
func (s *Server) cutAtRelease() bool {
	return s.stopping.Load() == int32(ShutdownWaitForServers)+1
}

// normalClients counts logged-in clients other than console ones.
func (s *Server) normalClients() int {
	n := 0
	for _, sess := range s.Sessions() {
		if sess.entry != nil {
			n++
		}
	}
	return n
}

// drainFree closes the clients that hold no server, all at once (safe shutdown); one that
// holds a server is closed when it releases it (Session.settle).
func (s *Server) drainFree() {
	var free []*Session
	for _, sess := range s.Sessions() {
		sess.mu.Lock()
		if sess.server == nil {
			free = append(free, sess)
		}
		sess.mu.Unlock()
	}
	killAll(free, cutFatal)
}

// kill closes the client's connection after telling it why (FATAL 57P01).
func (s *Session) kill(reason string) {
	s.killWith(pgerr.Fatal(pgerr.AdminShutdown, "%s", reason))
}
