package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/console"
)

// adminDBs are the virtual database names of the admin console.
func isAdminDB(name string) bool { return name == "pgbouncer" || name == "pgmux" }

// compatVersion is the PgBouncer release whose console pgmux mirrors; monitoring tools
// read it from SHOW VERSION and server_version to decide which columns to expect.
const compatVersion = "1.25.2"

// ShutdownMode says how the server stops, as PgBouncer's SHUTDOWN variants and signals.
type ShutdownMode int

const (
	// ShutdownImmediate: every client gets FATAL 57P01 and is closed now (SHUTDOWN,
	// SIGQUIT, or a second SIGINT/SIGTERM during a shutdown).
	ShutdownImmediate ShutdownMode = iota
	// ShutdownWaitForServers: safe shutdown (SHUTDOWN WAIT_FOR_SERVERS, SIGINT). New
	// clients are refused, clients without a server and clients waiting for one are told
	// and closed, and each client that holds a server is closed once its server is
	// released (its transaction ends; in session mode, when it leaves).
	ShutdownWaitForServers
	// ShutdownWaitForClients: super safe shutdown (SHUTDOWN WAIT_FOR_CLIENTS, SIGTERM).
	// New clients are refused; connected clients keep working until they leave.
	ShutdownWaitForClients
)

func (m ShutdownMode) String() string {
	switch m {
	case ShutdownWaitForServers:
		return "wait_for_servers"
	case ShutdownWaitForClients:
		return "wait_for_clients"
	}
	return "immediate"
}

// consoleState is the Server's admin-console and statistics state. mu guards the maps and
// flags; the retired totals are guarded by mu too (see Session.retire for lock order:
// console.mu before Session.mu).
type consoleState struct {
	reload   func() error
	shutdown func(ShutdownMode)
	version  string
	started  time.Time
	ctx      context.Context // cancelled when the server shuts down: ends waiting commands
	stop     context.CancelFunc

	mu      sync.Mutex
	retired map[poolKey]*totals
	// own are the console's counters, SHOW STATS' "pgbouncer" row (countClient).
	own       totals
	pausedAll bool
	suspended bool
	// suspendedNow is suspended, read without mu at each client message by the relays
	// (holdStream, awaitResume) and the client loop (loopable).
	suspendedNow atomic.Bool
	paused       map[string]bool // database -> held by PAUSE db
	killed       map[string]bool // database -> held by KILL db
	disabled     map[string]bool // database -> refusing new clients
	changed      chan struct{}   // closed and replaced whenever a hold is lifted
	avg          averager

	// waits are the PAUSE and SUSPEND commands waiting for their servers, until the
	// wait ends or RESUME lifts their hold.
	waits map[*holdWait]struct{}
	// resting are the clients whose next request waits for RESUME, their server kept
	// (awaitResume): SUSPEND counts them suspended.
	resting map[*Session]struct{}
	// running maps a console session to the cancel of the command it runs now: a
	// CancelRequest with the session's key ends the command (Server.cancel).
	running map[*Session]context.CancelCauseFunc
}

func newConsole(opts Options) *consoleState {
	ctx, stop := context.WithCancel(context.Background())
	v := opts.Version
	if v == "" {
		v = "dev"
	}
	return &consoleState{reload: opts.Reload, shutdown: opts.OnShutdown, version: v, started: time.Now(),
		ctx: ctx, stop: stop, retired: make(map[poolKey]*totals), paused: make(map[string]bool),
		killed: make(map[string]bool), disabled: make(map[string]bool), changed: make(chan struct{}),
		waits: make(map[*holdWait]struct{}), resting: make(map[*Session]struct{}),
		running: make(map[*Session]context.CancelCauseFunc)}
}

// held reports whether new work for db must wait (PAUSE, SUSPEND or KILL); c.mu is held.
func (c *consoleState) held(db string) bool {
	return c.pausedAll || c.suspended || c.paused[db] || c.killed[db]
}

// closesServers reports whether db's server connections are to be closed and kept
// closed (PAUSE, PAUSE db, KILL db; SUSPEND keeps them); c.mu is held.
func (c *consoleState) closesServers(db string) bool {
	return c.pausedAll || c.paused[db] || c.killed[db]
}

// lifted wakes clients waiting for a hold to end; c.mu is held.
func (c *consoleState) lifted() {
	c.suspendedNow.Store(c.suspended)
	close(c.changed)
	c.changed = make(chan struct{})
}

// errCanceledByUser is the cause a console command's context gets from a CancelRequest
// with its session's key (Ctrl-C in psql).
var errCanceledByUser = errors.New("canceling statement due to user request")

// beginCommand makes the context of the command console session sess starts: done when
// a CancelRequest with the session's key comes (cancelCommand) or the server shuts down.
func (c *consoleState) beginCommand(sess *Session) context.Context {
	ctx, cancel := context.WithCancelCause(c.ctx)
	c.mu.Lock()
	c.running[sess] = cancel
	c.mu.Unlock()
	return ctx
}

// endCommand ends the context beginCommand made for sess.
func (c *consoleState) endCommand(sess *Session) {
	c.mu.Lock()
	cancel := c.running[sess]
	delete(c.running, sess)
	c.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
}

// commandsRunning returns the console sessions running a command now.
func (c *consoleState) commandsRunning() map[*Session]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[*Session]bool, len(c.running))
	for sess := range c.running {
		out[sess] = true
	}
	return out
}

// cancelCommand cancels the command console session sess runs now, as a CancelRequest
// asks: a waiting PAUSE, SUSPEND or WAIT_CLOSE ends with 57014, and PAUSE and SUSPEND
// lift the hold they set (PgBouncer resumes on a cancel from the console). It reports
// whether sess was running one.
func (c *consoleState) cancelCommand(sess *Session) bool {
	c.mu.Lock()
	cancel := c.running[sess]
	c.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel(errCanceledByUser)
	return true
}

// canceled is the error of a console command whose wait ctx ended: cancelled by its
// client, or cut by the server's shutdown.
func canceled(ctx context.Context, cmd string) error {
	if errors.Is(context.Cause(ctx), errCanceledByUser) {
		return pgerr.New(pgerr.QueryCanceled, "canceling statement due to user request")
	}
	return pgerr.New(pgerr.QueryCanceled, "%s interrupted: %v", cmd, ctx.Err())
}

// refuseDisabled refuses a login to a DISABLEd database.
func (s *Server) refuseDisabled(db string) error {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled[db] {
		return pgerr.Fatal(pgerr.ObjectNotInPrerequisite, "database %q does not allow connections", db).
			WithHint("An administrator ran DISABLE %s on the pgmux console; ENABLE lets clients in again.", db)
	}
	return nil
}

// gate is the console's say on a normal client's login: refused for a DISABLEd database,
// delayed while the database is paused or killed.
func (s *Server) gate(cfg *config.Config, db string) error {
	c := s.console
	var timeout <-chan time.Time
	for {
		if err := s.refuseDisabled(db); err != nil {
			return err
		}
		c.mu.Lock()
		if !c.held(db) {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		if timeout == nil && cfg.QueryWaitTimeout > 0 {
			t := time.NewTimer(cfg.QueryWaitTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return pgerr.Fatal(pgerr.CannotConnectNow, "database %q is paused: query_wait_timeout passed", db)
		case <-c.ctx.Done():
			return pgerr.Fatal(pgerr.CannotConnectNow, "pgmux is shutting down")
		}
	}
}

// heldNow reports whether PAUSE, SUSPEND or KILL holds db's new clients now.
func (s *Server) heldNow(db string) bool {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held(db)
}

// consoleLogin is login's hook for the console: it handles a login to the admin database
// (handled is true) and otherwise refuses a DISABLEd database; PAUSE and KILL hold the
// client later, once it is authenticated (Session.awaitPool).
func (s *Session) consoleLogin(cfg *config.Config, pkt *startup.Packet) (handled bool, err error) {
	if !isAdminDB(s.dbName) {
		return false, s.srv.refuseDisabled(s.dbName)
	}
	return true, s.adminLogin(cfg, pkt)
}

// adminRole decides what user may do on the console.
func adminRole(cfg *config.Config, user string) console.Role {
	switch {
	case cfg.AuthType == config.AuthAny:
		// auth_type=any keeps no trustworthy user name: PgBouncer lets everyone in.
		return console.RoleAdmin
	case slices.Contains(cfg.AdminUsers, user):
		return console.RoleAdmin
	case slices.Contains(cfg.StatsUsers, user):
		return console.RoleStats
	}
	return console.RoleNone
}

// adminLogin admits a console client: listed in admin_users or stats_users, then
// authenticated as auth_type says.
func (s *Session) adminLogin(cfg *config.Config, pkt *startup.Packet) error {
	role := adminRole(cfg, s.user)
	if role == console.RoleNone {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "not allowed").
			WithDetail("User %q is in neither admin_users nor stats_users.", s.user).
			WithHint("Add the user to admin_users or stats_users to use the %s console.", s.dbName)
	}
	if err := s.authenticate(cfg, s.user); err != nil {
		return err
	}
	s.mu.Lock()
	s.role = role
	s.mu.Unlock()
	enc, _ := pkt.Get("client_encoding")
	if enc == "" {
		enc = "UTF8"
	}
	app, _ := pkt.Get("application_name")
	s.params = &sessionParams{base: pool.Params{
		{Name: "server_version", Value: compatVersion + "/bouncer"},
		{Name: "server_encoding", Value: "UTF8"},
		{Name: "client_encoding", Value: enc},
		{Name: "DateStyle", Value: "ISO"},
		{Name: "TimeZone", Value: "UTC"},
		{Name: "integer_datetimes", Value: "on"},
		{Name: "standard_conforming_strings", Value: "on"},
		{Name: "application_name", Value: app},
	}}
	s.srv.register(s)
	return s.sendLoginAnswer(pkt, nil)
}

// isAdmin reports whether the session is a console client.
func (s *Session) isAdmin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.role != console.RoleNone
}

// adminLoop answers console commands until the client leaves. Only the simple query
// protocol is served: as PgBouncer's console does, any extended-protocol message (Parse,
// Bind, Describe, Execute, Close, Flush, Sync) and a FunctionCall end the connection
// with a FATAL 08P01 that says why (extendedRefused). CopyData, CopyDone and CopyFail
// outside COPY are ignored, as PostgreSQL ignores them: a client still sending them
// after a failed COPY must not get an answer it does not wait for.
func (s *Session) adminLoop() error {
	defer func() {
		s.mu.Lock()
		s.state = ClientClosed
		s.mu.Unlock()
	}()
	counted := false
	for {
		typ, n, err := s.rd.Next()
		if err != nil {
			return err
		}
		if !counted && strings.IndexByte(consoleMessages, typ) >= 0 {
			counted = true
			s.srv.console.countClient()
		}
		switch typ {
		case 'X':
			return nil
		case 'Q':
			if err := s.adminSimpleQuery(n); err != nil {
				return err
			}
		case 'd', 'c', 'f':
			if err := s.rd.Skip(n); err != nil {
				return err
			}
		case 'P', 'B', 'D', 'E', 'C', 'H', 'S', 'F':
			s.killWith(extendedRefused(typ))
			return fmt.Errorf("console client sent %q: only the simple query protocol is served", typ)
		default:
			s.killWith(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return fmt.Errorf("invalid frontend message type %d", typ)
		}
	}
}

// consoleMessages are the message types adminLoop takes in (answers, skips or refuses);
// a client's first of them counts it in SHOW STATS (countClient).
const consoleMessages = "QdcfPBDECHSF"

// extendedRefused is the FATAL that ends a console client for a message of type typ
// outside the simple query protocol: PgBouncer's admin console answers such a message
// with 08P01 and closes the connection.
func extendedRefused(typ byte) *pgerr.Error {
	what := "the extended query protocol"
	if typ == 'F' {
		what = "function calls"
	}
	return pgerr.Fatal(pgerr.ProtocolViolation, "the admin console does not support %s", what).
		WithHint("Use psql, or set your driver to the simple query protocol (pgx: QueryExecModeSimpleProtocol).")
}

// adminSimpleQuery reads a Query of n bytes and answers it.
func (s *Session) adminSimpleQuery(n int) error {
	m, err := s.rd.Message(n)
	if err != nil {
		return err
	}
	q, _, err := wire.CString(wire.Body(m))
	if err != nil {
		s.killWith(pgerr.Fatal(pgerr.ProtocolViolation, "invalid Query message"))
		return err
	}
	out, after := s.adminQuery(string(q))
	if err := s.writeClient(out); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

// countClient counts a console client's first message (other than Terminate) in the
// console's counters, as PgBouncer's row counts it: a query and a transaction begin at a
// client's first message and, with no server to answer them, never end, so each console
// client counts once, in xact_count and query_count, and adds no time; and bytes count
// only on their way to a server, so none. No server is assigned, nothing is parsed or
// bound.
func (c *consoleState) countClient() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own.queries++
	c.own.xacts++
}

// adminQuery answers a simple Query on the console (package console), and returns an
// action to run once the answer is sent (SHUTDOWN).
func (s *Session) adminQuery(q string) ([]byte, func()) {
	s.mu.Lock()
	role := s.role
	s.mu.Unlock()
	ctx := s.srv.console.beginCommand(s)
	defer s.srv.console.endCommand(s)
	b := consoleBackend{s: s.srv, ctx: ctx}
	out, after, failed := console.Client{Backend: b, Role: role, User: s.user, Log: s.log()}.Answer(q)
	if failed != nil {
		s.srv.metrics.ErrorSent(failed.Code)
	}
	return out, after
}
