package proxy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Replication connections (replication=database for logical replication, a true value
// for physical: pg_basebackup, pg_receivewal, Debezium, postgres.js subscribe), as
// PgBouncer 1.23+ serves them. The client logs in as any other (the same authentication);
// pgmux then opens a server connection for it alone (pool.Dedicated), with the client's
// replication value and its other startup parameters in the StartupMessage (a physical
// replication connection takes no SET, and `options` goes as the client sent it), and
// answers the client's login with that server's parameters. From then on the bytes go
// both ways unread: the replication commands (IDENTIFY_SYSTEM, START_REPLICATION ...)
// sent as simple Query, and the CopyBoth stream ('W', then 'd' and 'c' each way). The
// server is never shared or reused; it closes when either side ends. It counts in the
// pool's size and in max_db_connections / max_user_connections like any server.
//
// None of this touches a normal client's path: the relay, the client loops and parking
// never see a replication client (Session.loop sends it to replicate at once).

// sessionKind is what a client asked for at login beyond its pool's mode: a real
// session (pgmux.pool_mode=session), or a replication connection, whose replication
// startup parameter it records. One byte for both: Session stays in its size class.
type sessionKind uint8

const (
	kindPooled   sessionKind = iota // its pool's mode
	kindSession                     // pgmux.pool_mode=session (params.go)
	kindLogical                     // replication=database
	kindPhysical                    // replication=true (on, yes, 1)
)

// forced reports a client that keeps one server for its whole session, whatever its
// pool's mode: a replication client does too.
func (k sessionKind) forced() bool { return k != kindPooled }

// replication reports a replication connection.
func (k sessionKind) replication() bool { return k >= kindLogical }

// replicationName is the replication column of SHOW CLIENTS and SHOW SERVERS
// (PgBouncer's words).
func (k sessionKind) replicationName() string {
	switch k {
	case kindLogical:
		return "logical"
	case kindPhysical:
		return "physical"
	}
	return "none"
}

// startupValue is the replication value that goes to the server.
func (k sessionKind) startupValue() string {
	if k == kindLogical {
		return "database"
	}
	return "true"
}

// replicationOf reads the replication startup parameter: "database", or a boolean as
// PostgreSQL reads one (a prefix of true/false/yes/no, on/off, 1/0, any case). Another
// value gets PostgreSQL's error for it.
func replicationOf(pkt *startup.Packet) (sessionKind, error) {
	v, ok := pkt.Get("replication")
	if !ok {
		return kindPooled, nil
	}
	if v == "database" {
		return kindLogical, nil
	}
	on, ok := parseBool(v)
	if !ok {
		return kindPooled, pgerr.Fatal(pgerr.InvalidParameterValue, "invalid value for parameter %q: %q", "replication", v).
			WithHint(`Valid values are: "false", 0, "true", 1, "database".`)
	}
	if on {
		return kindPhysical, nil
	}
	return kindPooled, nil
}

// parseBool reads a boolean as PostgreSQL's parse_bool does.
func parseBool(v string) (value, ok bool) {
	l := strings.ToLower(strings.TrimSpace(v))
	prefixOf := func(word string, min int) bool { return len(l) >= min && strings.HasPrefix(word, l) }
	switch {
	case l == "1", prefixOf("true", 1), prefixOf("yes", 1), prefixOf("on", 2):
		return true, true
	case l == "0", prefixOf("false", 1), prefixOf("no", 1), prefixOf("off", 2):
		return false, true
	}
	return false, false
}

// replicationParams is what the server's StartupMessage carries for a replication
// client: the pool's parameters, the client's over them (names in lower case, as
// PostgreSQL reads them), and the replication value.
func replicationParams(base pool.Params, m sessionKind, start []startup.Param) pool.Params {
	for _, p := range start {
		base.Set(strings.ToLower(p.Key), p.Value)
	}
	base.Set("replication", m.startupValue())
	return base
}

// loginReplication ends the login of a replication client once it is authenticated:
// its own server, then the login answer with that server's parameters.
func (s *Session) loginReplication(cfg *config.Config, pkt *startup.Packet, start []startup.Param) error {
	s.mode = config.PoolModeSession
	var c *pool.Conn
	var err error
	s.offload(func() { c, err = s.openReplication(cfg, start) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.server = c
	s.mu.Unlock()
	s.initParams(cfg, c.Params.Clone(), nil)
	s.srv.register(s)
	if err := s.sendLoginAnswer(pkt, nil); err != nil {
		s.dropReplication(err)
		return err
	}
	return nil
}

// openReplication waits as a normal login does while the database is held (PAUSE,
// SUSPEND, KILL), then opens the client's server, waiting at most query_wait_timeout
// and the login's deadline for room in the pool and the limits.
func (s *Session) openReplication(cfg *config.Config, start []startup.Param) (*pool.Conn, error) {
	if s.srv.heldNow(s.dbName) {
		s.srv.holdLogin(s, true)
		err := s.srv.gate(cfg, s.dbName)
		s.srv.holdLogin(s, false)
		if err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.loginWaitContext(cfg)
	defer cancel()
	m := s.kind
	c, err := s.entry.pool.Dedicated(ctx, func(t *pool.Target) {
		t.ConnectQuery = "" // SQL is refused on a physical replication connection
		t.Params = replicationParams(t.Params, m, start)
	})
	if err != nil {
		return nil, replicationError(cfg, err)
	}
	return c, nil
}

// replicationError is the FATAL a replication client gets when its server could not be
// opened. The server's own refusal of the replication connection goes to the client as
// it is, as it would from PostgreSQL: its pg_hba.conf (28000), a role without REPLICATION
// (42501), wal_level or max_wal_senders; a failure of pgmux's own credentials is told as
// for any client (serverError).
func replicationError(cfg *config.Config, err error) error {
	var pe *pgerr.Error
	if errors.As(err, &pe) && pe.Code == pgerr.InvalidAuthorization {
		return pe.AtSeverity(pgerr.SeverityFatal)
	}
	return serverError(cfg, err)
}

// dropReplication closes a replication client's server, when it has one.
func (s *Session) dropReplication(why error) {
	s.closed.Store(true)
	s.mu.Lock()
	c := s.server
	s.server = nil
	s.state = ClientClosed
	s.mu.Unlock()
	if c == nil {
		return
	}
	if why == nil {
		why = errors.New("the client left")
	}
	c.Discard(fmt.Errorf("replication client ended: %w", why))
}

// replicate relays a logged-in replication client's messages to its server, unread,
// until either side ends; the server's reader relays the other way (pumpReplication).
// It runs on the session goroutine, in place of the relay.
func (s *Session) replicate() (err error) {
	c := s.linkedServer()
	if c == nil {
		return io.ErrUnexpectedEOF
	}
	defer func() { s.dropReplication(err) }()
	s.mu.Lock()
	s.state = ClientActive
	s.mu.Unlock()
	if err := c.LeaseDedicated(s); err != nil {
		return err
	}
	rd := s.rd
	for {
		if rd.Buffered() == 0 && c.Wr.Buffered() > 0 {
			if err := c.Wr.Flush(); err != nil {
				return err
			}
		}
		typ, n, err := rd.Next()
		if err != nil {
			return err
		}
		if err := s.holdStream(c.Wr.Flush); err != nil {
			return err
		}
		s.ops.in.Add(uint64(n + wire.HeaderLen))
		if err := rd.Forward(c.Wr, n); err != nil {
			return err
		}
		if typ == 'X' { // Terminate: the server ends the session too
			_ = c.Wr.Flush()
			return nil
		}
	}
}

// pumpReplication relays a replication server's messages to its client, unread, on the
// server connection's reader goroutine; it returns when either side ends. The client's
// writer is held for whole messages only, so a KILL finds it free between them and
// ends the client at a message boundary (killWith), as ending does here.
func (s *Session) pumpReplication(c *pool.Conn) error {
	rd := c.Rd
	held := false
	defer func() {
		if held {
			s.wmu.Unlock()
		}
	}()
	// release sends what was relayed so far and lets go of the client's writer.
	release := func() error {
		err := s.wr.Flush()
		held = false
		s.wmu.Unlock()
		if err != nil {
			s.clientWriteFailed()
		}
		return err
	}
	for {
		if held && rd.Buffered() == 0 {
			if err := release(); err != nil {
				return err
			}
		}
		_, n, err := rd.Next()
		if err != nil {
			s.clientWriteFailed() // the server ended: so does its client
			return err
		}
		if held && s.srv.console.suspendedNow.Load() {
			if err := release(); err != nil { // what is relayed already goes out before the hold
				return err
			}
		}
		if err := s.holdStream(nil); err != nil {
			return err
		}
		if !held {
			s.wmu.Lock()
			held = true
		}
		if s.ending(c) {
			return nil
		}
		s.ops.out.Add(uint64(n + wire.HeaderLen))
		if err := rd.Forward(s.wr, n); err != nil {
			var we *wire.WriteError
			if errors.As(err, &we) {
				s.clientWriteFailed()
			}
			return err
		}
	}
}

// holdStream holds a replication relay at a message boundary while the pooler is
// SUSPENDed, after flushing what it relayed already (flush, nil for none), as PgBouncer's
// SUSPEND stops reading a socket once its buffer is empty; RESUME lets it go on. The
// message just read waits in pgmux's buffer as it would in the socket's. A shutdown ends
// the wait with an error, and so does the client leaving or being ended (untilResumed): its server is then closed at once (dropReplication),
// as any client's that leaves, not kept until RESUME.
func (s *Session) holdStream(flush func() error) error {
	c := s.srv.console
	if !c.suspendedNow.Load() {
		return nil
	}
	if flush != nil {
		if err := flush(); err != nil {
			return err
		}
	}
	err := s.untilResumed()
	if errors.Is(err, errLeftSuspended) {
		s.clientWriteFailed() // the other relay's wait or read ends too
	}
	return err
}

// errLeftSuspended ends a relay whose client left, or was ended, while SUSPEND held it.
var errLeftSuspended = errors.New("the client left while the pooler was suspended")

// streamGoneCheck is how often a relay held by SUSPEND looks at its client's socket.
const streamGoneCheck = 100 * time.Millisecond

// endStaleReplication ends, with a FATAL naming why, the replication clients whose server
// RECONNECT or a reload has marked to be closed (pool.Conn.CloseNeeded: its database
// moved to another host, server_tls_* changed). A pooled server so marked closes when it
// is released; a replication server never is, so its stream would go on against the old
// server forever and WAIT_CLOSE would never return. PgBouncer's janitor closes such a
// replication server at once for the same reason. The clients are told and closed on a
// goroutine of their own (killAll), so the command does not wait; WAIT_CLOSE does.
func (s *Server) endStaleReplication(why string) {
	var stale []*Session
	for _, sess := range s.Sessions() {
		if !sess.kind.replication() {
			continue
		}
		if c := sess.linkedServer(); c != nil && c.CloseNeeded() {
			stale = append(stale, sess)
		}
	}
	if len(stale) == 0 {
		return
	}
	s.log.Info("closing replication connections whose server is to be closed", zap.String("why", why), zap.Int("clients", len(stale)))
	go killAll(stale, func(sess *Session) *pgerr.Error {
		return pgerr.Fatal(pgerr.AdminShutdown, "terminating replication connection to database %s: %s", sess.dbName, why).
			WithHint("Reconnect: a new replication connection goes to the database's server as configured now.")
	})
}
