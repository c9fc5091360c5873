package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/console"
)

// ClientState is where a client is in its life, as SHOW CLIENTS reports it. A byte, as
// the Session's other small fields (TestSessionSizeBounded).
type ClientState uint8

const (
	ClientLogin   ClientState = iota // before AuthenticationOk
	ClientIdle                       // logged in, no server linked
	ClientActive                     // linked to a server
	ClientWaiting                    // queued for a server
	ClientClosed
)

func (c ClientState) String() string {
	switch c {
	case ClientLogin:
		return "login"
	case ClientIdle:
		return "idle"
	case ClientActive:
		return "active"
	case ClientWaiting:
		return "waiting"
	case ClientClosed:
		return "closed"
	}
	return fmt.Sprintf("ClientState(%d)", uint8(c))
}

// Session is one client connection. The session's goroutine owns nc and rd; wr belongs to
// the server connection's reader goroutine while a server is linked (it relays the
// server's answers) and to the session goroutine otherwise. A client parked without its
// net.Conn has neither rd nor wr (nil, detach_linux.go). mu guards the link state.
//
// A Session is two allocations: this one, which every logged-in client keeps, and its
// working state (sessionWork, embedded by pointer so its fields read as the Session's),
// which a parked client that holds nothing of its own gives back (work.go shed) and a
// resumed one makes again. An idle client then costs the fields below and its socket.
//
// Owners. Five kinds of goroutine touch a Session; each field's comment says which:
//   - the session goroutine (run, then relay; after a park, the goroutine the parker
//     starts to resume it, never two at once): nc (swapped under ncMu at park and
//     resume, detach_linux.go; other goroutines use it only under ncMu: closeAndWake,
//     writeOut, remote, localAddr), rd, sessionWork (the pointer: set and cleared under
//     mu), the prepared-statement fields, the pin bookkeeping but pinned, the replica
//     fields but rr, limits, scratch;
//   - the reader of the leased server connection (Pump, on pool's reader goroutine):
//     writes wr while it holds wmu, pops q under mu, checkCount;
//   - the database's listener reader (listen.go Notify): wr only under wmu, and only
//     what the socket takes at once; a goroutine it starts (notesLater) holds wmu for
//     the rest; else it leaves the notification in notes for the next holder of wmu;
//   - timers (timeouts.go timerFired), under mu; the idle sweep (kickIfIdle) through
//     idleAt alone;
//   - the parker (park_linux.go): fd, rawFD, idleSince and expired, while the session
//     goroutine has returned; parkedFD under the parker's lock.
//
// The console and the metrics read a session under mu; what they read of sessionWork
// they read only when the pointer is set (a parked client may have none).
//
// mu guards server, mode, the link's bookkeeping (q and the link.Book: Pending,
// Unsynced, TxStatus...) and the other link fields; wmu orders writes to wr; atomics are
// noted as such. The session goroutine and the server's reader never hand a field over
// through the socket alone: what one writes and the other reads goes through mu, wmu or
// an atomic.
type Session struct {
	srv         *Server
	id          uint64
	nc          net.Conn
	rd          *wire.Reader
	wr          *wire.Writer
	*names      // user and dbName: set by the login, then read only
	entry       *poolEntry
	cancelPID   uint32
	cancelKey   uint32
	connectedAt int64 // unix nanoseconds
	maxStmts    int32 // max_prepared_statements at login (prepared.go)
	// loopIdx is the index of the session's client loop in Server.loops (home). Set at
	// creation (Server.loopFor); changed only by loopPark, under ncMu, while the client
	// is between requests with no server linked, to follow the loops the GOMAXPROCS
	// governor keeps active. Atomic: other goroutines read home.
	loopIdx atomic.Uint32

	// params are the client's reported parameters as it believes them to be; set are its
	// session settings, carried from server to server (settings.go): nil until it has any.
	// The pointer is set once, by either goroutine; its fields are guarded as documented.
	params *sessionParams
	set    atomic.Pointer[settings]

	mu     sync.Mutex
	server *pool.Conn
	// *sessionWork is the working state (work.go): set while the session goroutine runs,
	// nil while a parked client holds nothing of its own. Set and cleared under mu.
	*sessionWork
	kept *keptWork // what a parked session keeps of its working state while it has none (shed)

	// Client writes (see listen.go): wmu is held by whoever writes to wr — the server's
	// reader for a whole response, the session goroutine while no server is linked, the
	// listener for a notification. Notifications wait in notify until a writer lets go.
	wmu   sync.Mutex
	notes atomic.Pointer[notifyBox] // made on the first notification
	// endWith is the FATAL the session is being ended with (killWith: a console command,
	// a timer, a shutdown...): the relay holding wmu sends it at its next message
	// boundary (ending), or when its server was closed to wake it (serverFailed).
	endWith atomic.Pointer[pgerr.Error]
	timers  *sessionTimers // guarded by mu; made when a timeout is first armed
	// clientIdle is client_idle_timeout at login (the other limits are sessionWork's):
	// set by the session goroutine before the parker or the sweep can read it.
	clientIdle time.Duration
	closed     atomic.Bool // the client is gone; server output is dropped

	// Parking (see park_linux.go): the socket's descriptor, when the client went idle,
	// and whether the parker found it idle past client_idle_timeout. A client parked
	// without its net.Conn (detach_linux.go) has only rawFD (else -1); ncMu guards nc and
	// rawFD against the goroutines that use them while it may be parked. parkedFD is the
	// descriptor the parker knows it by (guarded by the parker's lock).
	fd        int32
	rawFD     int32
	parkedFD  int32
	maxMsg    int32 // rd.MaxMessage while a parked client has no reader (detach_linux.go)
	expired   atomic.Bool
	ncMu      sync.Mutex
	idleAt    atomic.Int64 // Server.clock when the client went idle; 0 busy, negative kicked (-start)
	idleSince int64        // unix nanoseconds

	// waitKind says what a client counted as waiting (waiting.go) waits for beyond a
	// server of its pool; waitSince is since when it waits, in unix nanoseconds. Both are
	// guarded by mu. While the client has no working state (shed), so waits for nothing,
	// waitSince holds its latest request's start instead (lastRequestLocked).
	waitSince int64
	pinned    pinReason // why a transaction-mode client keeps its server (sticky.go); under mu
	waitKind  waitKind

	// The small fields last, one byte each, so that the Session fits its size class
	// (TestSessionSizeBounded).
	mode      config.PoolMode // the current link's (the login's until one); under mu
	state     ClientState     // under mu
	role      console.Role    // console role, set once at console login (admin.go); under mu
	tls       bool
	prep      prepMode // how the current link treats named statements (prepared.go)
	listening bool     // subscribed through the database's listener
	// kind: a real session asked for at login (pgmux.pool_mode=session, params.go), or a
	// replication connection (replication.go); set at login, then read only.
	kind   sessionKind
	ncEnd  ncEnd     // whether nc was closed and the client told why; under ncMu
	onLoop loopState // the client loop's hold on the client (clientloop.go), under the parker's lock
	// loopWait: the request counted as waiting (state ClientWaiting) was dispatched on the
	// client loop, which watches the client's socket and drops the wait when its peer
	// leaves (gone.go); under mu.
	loopWait bool
	// pumps counts the server readers inside Pump for this session: while one is, the
	// working state stays (shed). Each adds pumpQuiet too while it relays nothing
	// (suspend.go: SUSPEND reads it).
	pumps atomic.Int32
}

// names are a client's user name and the database it asked for. Most clients log in
// with their pool's key (not a forced user or an alias): they point to the pool entry's
// names, so an idle one holds no strings, nor the pointer's pair of string headers, of its
// own. Read only once set: the login makes a client's own before it writes one.
type names struct{ user, dbName string }

// noNames are the names of a client before its login has read them.
var noNames names

// SessionStats counts a session's traffic.
type SessionStats struct {
	Transactions, Queries uint64
	BytesIn, BytesOut     uint64
	WaitTime              time.Duration
}

func newSession(s *Server, nc net.Conn, id uint64) *Session {
	sess := &Session{srv: s, id: id, nc: nc, rd: wire.NewReader(nc), wr: wire.NewWriter(nc), names: &noNames,
		connectedAt: time.Now().UnixNano(), fd: socketFD(nc), rawFD: -1, parkedFD: -1}
	sess.loopIdx.Store(s.loopFor(id))
	sess.sessionWork = sess.freshWork()
	return sess
}

// home is the session's client loop, which also parks it when idle; nil when the server
// has none. Sessions are spread over the active loops by id (Server.loopFor) and follow
// them when their number changes (loopPark); the loops are made once, in New.
func (s *Session) home() *parker {
	if l := s.srv.loops; len(l) > 0 {
		if i := s.loopIdx.Load(); int(i) < len(l) {
			return l[i]
		}
		return l[0]
	}
	return nil
}

// LeaseBox is the session's box for the server connections it leases (pool.LeaseBox):
// leasing once per transaction allocates nothing. It is part of the working state (one
// per stretch between parks: a parked client leases nothing) and nil for sessions made
// in tests. The pool asks for it while the session waits in Acquire, so the working
// state is there.
func (s *Session) LeaseBox() *pool.LeaseBox {
	if w := s.sessionWork; w != nil {
		return w.box
	}
	return nil
}

// scanMemo keeps sqlscan.LeadOf's answer for one text of the client message being
// handled: a Query is looked at for LISTEN multiplexing, pinning, SQL PREPARE/EXECUTE,
// the statement cache and DDL, an unnamed Parse for pinning, DISCARD and DDL, each of
// which used to look at it again. The key is the reader's message count, the text's
// length and where it is: for a view of the reader's buffered bytes, its offset from the
// message's start (memoKey), which stays when the message is consumed and when a queued
// request's bytes move to a small buffer (clientloop.go loopLease, relay.go lease), so
// neither the relay's look after it takes the message nor the request handed a server
// later scans it again; for any other text, its address. An address, not a pointer: an idle
// session must not keep a pooled buffer alive. Used on the client's goroutine only.
type scanMemo struct {
	seq uint64
	at  uintptr // the offset in the reader's window (rel), or the text's address
	// addr is where the text was at its latest look: a caller's view of the same bytes
	// (the same message, address and length) is answered without memoKey's window
	// arithmetic. Each of a Parse's or Query's four looks (classify, execOf, the
	// statement cache's names, the rewrite) hits this way.
	addr uintptr
	n    int32 // texts of at most memoMax bytes are kept; 0: the memo holds nothing
	lead sqlscan.Lead
	rel  bool // last: with lead it fits the word n starts
}

const memoMax = 1<<31 - 1

// parseMemo is the text of a client's latest Parse on the loop and its Lead: a client
// that parses its unnamed statement again for each request (pgbench -M extended,
// node-postgres, psycopg, JDBC below prepareThreshold) sends the same text each time,
// whose scan (sqlscan.LeadOf, a tenth of such a request's instructions) a comparison
// replaces. Texts longer than parseMemoMax are not kept.
type parseMemo struct {
	text []byte
	lead sqlscan.Lead
}

const parseMemoMax = 512

// parseLead is leadAt for the text q of a Parse: on a miss, the Lead of the client's
// previous Parse when q is the same text, else sqlscan.LeadOf's, kept for the next.
func (s *Session) parseLead(q string, seq uint64) sqlscan.Lead { return s.leadFor(q, seq, true) }

// memoKey is where q is, as scanMemo keeps it: for the message being handled, from its
// start (wire.Reader.Current: the same before and after the message is consumed, so a
// text looked at before the relay takes the message, and again after, is one key); for
// the next message (next: the client loop's look before Next counts it), from the
// start of what is buffered, where that message starts.
func (s *Session) memoKey(q string, addr uintptr, next bool) (at uintptr, rel bool) {
	w := s.rd.Current()
	if next {
		w = s.rd.Window()
	}
	if len(w) > 0 {
		if start := uintptr(unsafe.Pointer(&w[0])); addr >= start && addr+uintptr(len(q)) <= start+uintptr(len(w)) {
			return addr - start, true
		}
	}
	return addr, false
}

// lead is sqlscan.LeadOf(q) for q a view of the client message being handled (or any
// string that does not change while it is), computed once per message. The memo's
// answer is returned inline: each message asks several times.
func (s *Session) lead(q string) sqlscan.Lead {
	if s.rd == nil {
		return sqlscan.LeadOf(q)
	}
	return s.leadAt(q, s.rd.Seq())
}

// leadAt is lead for q in message seq of the reader: the one being handled, or for the
// client loop's look at the next message before Next counts it (loopable), the next one,
// whose dispatch then finds the answer kept.
func (s *Session) leadAt(q string, seq uint64) sqlscan.Lead { return s.leadFor(q, seq, false) }

// parseMemo is the loop's memo of the latest Parse text, for a look at a Parse's text
// (parse) on the loop; nil otherwise.
func (s *Session) parseMemo(parse bool) *parseMemo {
	if !parse {
		return nil
	}
	return s.lw.parse
}

// leadFor is leadAt, and parseLead when parse is set.
func (s *Session) leadFor(q string, seq uint64, parse bool) sqlscan.Lead {
	if len(q) == 0 {
		return sqlscan.Lead{} // LeadOf("")
	}
	addr := uintptr(unsafe.Pointer(unsafe.StringData(q)))
	m := &s.scan
	var at uintptr
	var rel bool
	if int(m.n) == len(q) && m.seq == seq {
		if m.addr == addr {
			return m.lead
		}
		if at, rel = s.memoKey(q, addr, seq != s.rd.Seq()); m.at == at && m.rel == rel {
			m.addr = addr
			return m.lead
		}
	} else {
		at, rel = s.memoKey(q, addr, seq != s.rd.Seq())
	}
	var l sqlscan.Lead
	if pm := s.parseMemo(parse); pm != nil && string(pm.text) == q {
		l = pm.lead
	} else {
		l = sqlscan.LeadOf(q)
		if parse && len(q) <= parseMemoMax {
			if pm == nil {
				pm = &parseMemo{}
				s.lw.parse = pm
			}
			pm.text, pm.lead = append(pm.text[:0], q...), l
		}
	}
	if len(q) <= memoMax {
		*m = scanMemo{seq: seq, at: at, addr: addr, rel: rel, n: int32(len(q)), lead: l}
	}
	return l
}

// maybeInteresting is sqlscan.MaybeInteresting(q) for q as in lead, computed once per
// message.
func (s *Session) maybeInteresting(q string) bool { return s.lead(q).Interesting }

// leases reports whether c is (still) leased to s.
func (s *Session) leases(c *pool.Conn) bool {
	if b := s.LeaseBox(); b != nil {
		return c.LeasedBy(b)
	}
	return c.Lessee() == pool.Lessee(s)
}

// sessionLog logs with the client's id. It builds no child logger up front: an idle
// client should cost as little memory as possible, and sessions log rarely.
type sessionLog struct {
	base *zap.Logger
	id   uint64
}

// log is the session's logger.
func (s *Session) log() sessionLog { return sessionLog{s.srv.log, s.id} }

// remote is the client's address.
// onUnixSocket reports whether the client came through a unix socket (the listener's
// address: a client's own may be unnamed).
func (s *Session) onUnixSocket() bool {
	_, ok := s.localAddr().(*net.UnixAddr)
	return ok
}

func (s *Session) remote() net.Addr {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if a := s.rawAddrLocked(false); a != nil {
		return a
	}
	return s.nc.RemoteAddr()
}

// localAddr is the address the client connected to.
func (s *Session) localAddr() net.Addr {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if a := s.rawAddrLocked(true); a != nil {
		return a
	}
	return s.nc.LocalAddr()
}

// ncEnd records the end of a client's connection (under ncMu).
type ncEnd uint8

const (
	ncClosed ncEnd = 1 << iota // closeAndWake closed nc: its descriptor number may be another's now
	ncTold                     // a FATAL went out (tell): no second one
)

// tell writes pe, the FATAL the client is closed with, waiting at most wait for a slow
// client; s.wmu is held (fatalLocked), so it lands after the last whole message. Only the
// first FATAL goes out, and only before the socket closes: two goroutines ending a client
// at once (a shutdown's drain and the session's own refusal) each tell before they close,
// so whichever closes first has told already.
func (s *Session) tell(pe *pgerr.Error, wait time.Duration) {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	if s.ncEnd != 0 {
		return
	}
	s.ncEnd |= ncTold
	s.srv.metrics.ErrorSent(pe.Code)
	b := pe.Append(nil)
	if s.writeRawLocked(b) {
		return
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(wait))
	if s.wr != nil && s.wr.Buffered() > 0 {
		// Whole messages a relay or the session left for a later flush (a full socket,
		// a batch) go first: written before them, the FATAL could land inside one.
		if s.wr.Write(b) == nil {
			_ = s.wr.Flush()
		}
		return
	}
	_, _ = s.nc.Write(b)
}

// detachedConn stands for a parked client's net.Conn (detach_linux.go): it is closed.
type detachedConn struct{}

func (detachedConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (detachedConn) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (detachedConn) Close() error                     { return nil }
func (detachedConn) LocalAddr() net.Addr              { return detachedAddr{} }
func (detachedConn) RemoteAddr() net.Addr             { return detachedAddr{} }
func (detachedConn) SetDeadline(time.Time) error      { return net.ErrClosed }
func (detachedConn) SetReadDeadline(time.Time) error  { return net.ErrClosed }
func (detachedConn) SetWriteDeadline(time.Time) error { return net.ErrClosed }

// detachedAddr is the address of a closed detached connection.
type detachedAddr struct{}

func (detachedAddr) Network() string { return "closed" }
func (detachedAddr) String() string  { return "" }

func (l sessionLog) with(f []zap.Field) []zap.Field { return append(f, zap.Uint64("client", l.id)) }

func (l sessionLog) Debug(msg string, f ...zap.Field) {
	if ce := l.base.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(l.with(f)...)
	}
}
func (l sessionLog) Info(msg string, f ...zap.Field)  { l.base.Info(msg, l.with(f)...) }
func (l sessionLog) Warn(msg string, f ...zap.Field)  { l.base.Warn(msg, l.with(f)...) }
func (l sessionLog) Error(msg string, f ...zap.Field) { l.base.Error(msg, l.with(f)...) }

// socketFD returns the descriptor of a plain socket, or -1.
func socketFD(nc net.Conn) int32 {
	if d, ok := nc.(interface{ descriptor() int32 }); ok {
		return d.descriptor() // a loop's login: no closure (its capture is a heap allocation)
	}
	return sysFD(nc)
}

// sysFD returns the descriptor of x (a socket, a listener) when it has one, or -1.
func sysFD(x any) int32 {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := int32(-1)
	_ = raw.Control(func(f uintptr) { fd = int32(f) })
	return fd
}

// run serves the connection from its first byte: login, then the relay loop. The loop
// may park an idle client and return; resume continues it on a new goroutine, and end
// runs once, whichever goroutine the session ends on.
func (s *Session) run(nclients int64) {
	cfg := s.srv.Config()
	s.rd.MaxMessage = cfg.MaxPacketSize
	if cfg.ClientLoginTimeout > 0 {
		_ = s.nc.SetDeadline(time.Now().Add(cfg.ClientLoginTimeout))
	}
	s.srv.loggingIn(s, true)
	pkt, err := s.negotiate(cfg)
	if err == nil && pkt != nil {
		err = s.login(cfg, pkt, nclients)
		s.srv.loggingIn(s, false)
		if err == nil {
			_ = s.nc.SetDeadline(time.Time{})
			s.logConnected(cfg)
			if !s.parkAfterLogin(nclients) {
				s.loop()
			}
			return
		}
		err = loginTimedOut(cfg, err)
	}
	s.srv.loggingIn(s, false)
	s.loginFailed(err)
	s.nc.Close()
	s.srv.unregister(s) // registered before its last answer, whose write may have failed
	s.srv.connDone()
}

// logConnected logs a login when log_connections is on.
func (s *Session) logConnected(cfg *config.Config) {
	if cfg.LogConnections {
		s.srv.log.Info("client connected", zap.Uint64("client", s.id), zap.String("db", s.dbName),
			zap.String("user", s.user), s.addrField(), zap.Bool("tls", s.tls))
	}
}

// addrField is the client's address in a log line (clientAddr).
func (s *Session) addrField() zap.Field {
	return zap.Stringer("addr", clientAddr{s.remote(), s.srv.Config().ListenPort})
}

// loop runs the logged-in session until it ends or parks.
func (s *Session) loop() {
	var err error
	switch {
	case s.isAdmin():
		err = s.adminLoop()
	case s.kind.replication():
		err = s.replicate()
		s.retire() // its relayed bytes stay in SHOW STATS
	case s.expired.Load():
		err = s.idleTimedOut()
		s.clientGone()
		s.retire()
	default:
		parked, e := s.relay()
		if parked {
			return
		}
		err = e
		s.clientGone()
		s.retire()
	}
	s.end(err)
}

// eagerParkClients is how many clients a server must hold before a client that has just
// logged in and sent nothing more is parked almost at once (eagerParkWait) instead of
// after parkAfter. A storm of connections that then stay idle (a fleet of app instances
// starting) would otherwise have a goroutine each for a second; the runtime never frees
// a goroutine's descriptor, so that peak would stay in memory for the life of the
// process. Below it, no client is parked at login.
const eagerParkClients = 256

// eagerParkWait is how long such a client may take to send its first request before it
// is parked. Most clients query as soon as they are in (pgbench, scripts, serverless
// functions, a pool warming up): one round trip, which the check right after the
// login's last answer always came too early for, so each of them paid a park and a
// resume (five more epoll_ctl calls, a goroutine, the connection rebuilt). A storm of
// clients that stay idle holds a goroutine each for this long instead: the login rate
// times 25 ms, a few dozen.
const eagerParkWait = 25 * time.Millisecond

// parkAfterLogin parks a freshly logged-in client that has sent nothing more within
// eagerParkWait when the server holds many clients; it reports whether it did (the
// session then resumes on a new goroutine when bytes arrive).
//
// With client_loop on, a client of a server holding fewer clients waits for its first
// request on the loop; past eagerParkClients it goes the way above, as a loop-parked
// client keeps its net.Conn until the sweep parks it (a second later): a storm of idle
// clients would leave the runtime a poll descriptor for each, which it keeps for the life
// of the process (measured: ~300 bytes per idle client at 5,000). After its first
// request it waits on the loop like any other (relay.go, next).
func (s *Session) parkAfterLogin(nclients int64) bool {
	if s.kind.replication() {
		return false // its own goroutine relays it at once (replication.go)
	}
	if cfg := s.srv.Config(); cfg != nil && cfg.ClientLoop && nclients < eagerParkClients && !s.isAdmin() &&
		s.rd.Buffered() == 0 && s.loopOK() {
		return s.loopPark(true) // the client loop reads its first request (clientloop.go)
	}
	if nclients < eagerParkClients || s.isAdmin() || !s.canPark() || s.rd.Buffered() > 0 {
		return false
	}
	if s.firstRequestWithin(eagerParkWait) {
		return false
	}
	s.idleSince = time.Now().UnixNano()
	return s.park()
}

// firstRequestWithin waits up to d for the client's first bytes after its login and
// reports whether the wait ended otherwise than by running out: bytes came (they stay
// buffered for the relay), or the read failed, which the relay's own read then meets.
// The deadline is set and cleared under s.mu, as the idle sweep's are (kickIfIdle); the
// sweep leaves this client alone meanwhile (idleAt is not advertised yet).
func (s *Session) firstRequestWithin(d time.Duration) bool {
	s.mu.Lock()
	err := s.nc.SetReadDeadline(time.Now().Add(d))
	s.mu.Unlock()
	if err != nil {
		return true
	}
	err = s.rd.Await()
	s.mu.Lock()
	_ = s.nc.SetReadDeadline(time.Time{})
	s.mu.Unlock()
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// park hands the idle session's socket to the parker and reports whether it did; the
// caller's goroutine then returns. Unless notifications may be written to it while it
// is parked, the client is parked without its net.Conn (detach_linux.go).
func (s *Session) park() bool {
	s.rd.Release()
	s.shed()
	if s.parkSocket() {
		return true // it may already run again, on the goroutine that resumed it
	}
	s.ensureWork()
	return false
}

// parkSocket is park's part once the working state is settled. A client whose writer is
// in use (a goroutine still sending it the end of an answer its socket did not take at
// once: flushLeft) keeps its connection while parked: detaching would close the socket
// under that write.
func (s *Session) parkSocket() bool {
	held := s.wmu.TryLock() // before ncMu, as killWith takes them
	parked := s.parkSocketLocked(held)
	if held {
		s.unlockW() // after ncMu: it sends the notifications that came meanwhile, if any
	}
	return parked
}

// parkSocketLocked is parkSocket under ncMu; held: the writer was free, and is held.
func (s *Session) parkSocketLocked(held bool) bool {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	switch {
	case s.ncEnd&ncClosed != 0:
		return false // the next read fails and the session ends
	case !held || s.listening || s.rd.Buffered() > 0 || s.wr.Buffered() > 0:
		return s.home().park(s, s.fd)
	}
	return s.detachLocked()
}

// resume continues a parked session whose socket became readable (or that must end).
func (s *Session) resume() {
	resumes.Add(1)
	growLoginStack() // the request it resumes for goes as deep as a login (stack.go)
	if s.expired.Load() && s.linkedServer() != nil {
		// Loop-parked inside a transaction (clientloop.go): not idle, as the sweep's
		// kickIfIdle sees a linked client.
		s.expired.Store(false)
	}
	s.reattach()
	s.ensureWork()
	s.loop()
}

// resumes counts the parked sessions resumed on a goroutine of their own (tests: those a
// loop serves where their socket woke do not count, resumeOnLoop).
var resumes atomic.Uint64

// wake resumes a parked session so that it notices its connection was closed.
// closeAndWake closes the client's socket and resumes the session if it was parked, so
// that it ends. It takes the session out of the parker before closing: once closed, the
// descriptor number may go to a new connection that parks under it.
func (s *Session) closeAndWake() {
	s.ncMu.Lock()
	parked := s.home().unpark(s)
	if !parked && s.shutRawLocked() {
		// Without a net.Conn and still the loop's (its first request being read, its
		// login's last steps): shut down, not closed, under the loop's reads; the
		// session's end closes it.
		s.ncEnd |= ncClosed
	} else {
		s.closeClientLocked()
	}
	s.ncMu.Unlock()
	if parked {
		go s.resume()
	}
}

// closeClientLocked closes the client's socket: a detached session's bare descriptor,
// else its net.Conn; s.ncMu is held and the session is out of the parker.
func (s *Session) closeClientLocked() {
	if !s.closeRawLocked() {
		_ = s.nc.Close()
	}
	s.ncEnd |= ncClosed
}

// canPark reports whether the session's socket can wait in the parker.
func (s *Session) canPark() bool { return s.home() != nil && s.fd >= 0 && !s.tls }

// end is the session's last step.
func (s *Session) end(err error) {
	if hook := testHookSessionEnd.Load(); hook != nil {
		(*hook)(s)
	}
	s.srv.unregister(s)
	if s.srv.Config().LogDisconnections {
		fields := []zap.Field{zap.Uint64("client", s.id), zap.String("db", s.dbName), zap.String("user", s.user),
			zap.Duration("age", time.Since(time.Unix(0, s.connectedAt)))}
		if err != nil && !errors.Is(err, io.EOF) && !connClosed(err) {
			fields = append(fields, zap.Error(err))
		}
		s.srv.log.Info("client disconnected", fields...)
	}
	if !s.closeLoginFD() { // (a client without a net.Conn: its bare descriptor, under ncMu)
		closeAtEnd(s.nc, err == nil || errors.Is(err, io.EOF)) // the client left (closer_linux.go)
	}
	if s.rd != nil {
		// Its read buffer goes back to the pool for the clients still here: dropped, each
		// departure of a storm (5,000 clients ending together) cost a fresh 16 KB buffer
		// and its zeroing for a later read, and the collections they set off.
		s.rd.Drop()
	}
	s.srv.connDone()
}

// testHookSessionEnd, when set by a test, runs as a session begins its last step (end),
// still registered: a test makes it a session that does not end (Stop's bound).
var testHookSessionEnd atomic.Pointer[func(*Session)]

// connClosed reports whether err is a use of a connection closed under it: net.ErrClosed,
// or, for a resumed client's socket (an *os.File, detach_linux.go), os.ErrClosed or the
// poller's "use of closed file" (internal/poll's ErrFileClosing, which nothing exported
// matches).
func connClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) ||
		strings.Contains(err.Error(), "use of closed file")
}

// negotiate answers SSLRequest and GSSENCRequest until the StartupMessage arrives. A nil
// packet with nil error means the connection was a CancelRequest.
func (s *Session) negotiate(cfg *config.Config) (*startup.Packet, error) {
	for i := 0; i < 3; i++ {
		if i == 0 {
			if err := s.directTLS(); err != nil {
				return nil, err
			}
		}
		pkt, err := startup.Read(s.rd)
		if err != nil {
			if errors.Is(err, startup.ErrTooLarge) || errors.Is(err, startup.ErrMalformed) || errors.Is(err, startup.ErrTooManyParams) {
				return nil, pgerr.Fatal(pgerr.ProtocolViolation, "%v", err)
			}
			return nil, err
		}
		switch pkt.Kind {
		case startup.KindCancel:
			s.offload(func() { s.srv.cancel(pkt.CancelPID, pkt.CancelKey) }) // it dials the server
			return nil, nil
		case startup.KindGSSENCRequest:
			if err := s.nothingAfter("GSSAPI encryption request"); err != nil {
				return nil, err
			}
			if err := s.loginWrite([]byte{'N'}); err != nil {
				return nil, err
			}
		case startup.KindSSLRequest:
			if err := s.startTLS(); err != nil {
				return nil, err
			}
		case startup.KindStartup:
			return pkt, nil
		}
	}
	return nil, pgerr.Fatal(pgerr.ProtocolViolation, "too many SSL/GSS negotiation requests")
}

// loginTimedOut turns err, where the login of a client that has sent its StartupMessage
// failed, into the FATAL PgBouncer sends when that is client_login_timeout passing: its
// text and SQLSTATE (janitor.c), where pgmux closed the socket without a word and the
// client saw only the connection drop. Before the StartupMessage nothing is sent, as
// PostgreSQL sends nothing to a client that never finished its startup packet.
func loginTimedOut(cfg *config.Config, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return pgerr.Fatal(pgerr.ProtocolViolation, "client_login_timeout").
		WithDetail("The login did not finish within client_login_timeout (%v).", cfg.ClientLoginTimeout)
}

// loginFailed tells the client why, when there is something to tell.
func (s *Session) loginFailed(err error) {
	if err == nil {
		return
	}
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		if pe.Severity != pgerr.SeverityFatal {
			pe = pe.AtSeverity(pgerr.SeverityFatal)
		}
		// The login's deadline (client_login_timeout) may have passed, and with it the
		// socket's: the FATAL gets a second of its own, as tell's do. (A login on a client
		// loop has no socket deadline: its write goes out if the socket takes it now.)
		// Counted before the client can see the FATAL: a client (or a test) reading the
		// metrics once refused finds its failure there.
		if sl := (*serverLoginError)(nil); errors.As(err, &sl) {
			s.srv.metrics.ServerLoginFailed(pe.Code) // pgmux's login to the server, not the client's
		} else {
			s.srv.metrics.LoginFailed(pe.Code)
		}
		_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = s.loginWrite(pe.Append(nil))
		if pe.Code == pgerr.InvalidPassword || pe.Code == pgerr.InvalidAuthorization {
			s.log().Warn("client login failed", zap.String("db", s.dbName), zap.String("user", s.user),
				s.addrField(), zap.String("reason", pe.Message))
		} else {
			s.log().Info("client login refused", s.addrField(), zap.String("reason", pe.Message))
		}
		return
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		s.log().Debug("client login aborted", zap.Error(err))
	}
}

// login checks the startup packet, authenticates, and sends the login answer.
func (s *Session) login(cfg *config.Config, pkt *startup.Packet, nclients int64) error {
	if pkt.Major != 3 {
		return pgerr.Fatal(pgerr.FeatureNotSupported,
			"unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", pkt.Major, pkt.Minor)
	}
	if err := s.negotiateVersion(pkt); err != nil {
		return err
	}
	if requiresTLS(cfg.ClientTLS.SSLMode) && !s.tls && !s.onUnixSocket() {
		// A unix socket is not asked for TLS, as in PgBouncer ("require SSL except on
		// unix socket"): libpq never tries it there.
		return pgerr.Fatal(pgerr.InvalidAuthorization, "SSL required")
	}
	user, _ := pkt.Get("user")
	if user == "" {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "no PostgreSQL user name specified in startup packet")
	}
	dbName, _ := pkt.Get("database")
	if dbName == "" {
		dbName = user
	}
	s.names = &names{user: user, dbName: dbName}
	// During a shutdown only the console is served (through the unix socket, the one
	// listener left open), as in PgBouncer.
	if s.srv.draining.Load() && !isAdminDB(s.dbName) {
		return pgerr.Fatal(pgerr.CannotConnectNow, "pgmux is shutting down")
	}
	if cfg.MaxClientConn > 0 && nclients > int64(cfg.MaxClientConn) && !isAdminDB(s.dbName) {
		// The console stays reachable at the limit (as in PgBouncer): SHOW and KILL are
		// what an operator needs then.
		return pgerr.Fatal(pgerr.TooManyConnections, "no more connections allowed (max_client_conn)")
	}
	kind, err := replicationOf(pkt)
	if err != nil {
		return err
	}
	if kind.replication() && isAdminDB(s.dbName) {
		return pgerr.Fatal(pgerr.FeatureNotSupported, "replication connections to the admin console are not supported")
	}
	s.kind = kind
	if handled, err := s.consoleLogin(cfg, pkt); handled || err != nil {
		return err
	}
	db, ok := cfg.DatabaseFor(s.dbName)
	if !ok {
		return pgerr.Fatal(pgerr.InvalidCatalogName, "database %q does not exist", s.dbName)
	}
	if err := s.authenticate(cfg, user); err != nil {
		return err
	}
	startParams, err := s.startupParams(cfg, pkt)
	if err != nil {
		return err
	}
	// A database that logs in as a fixed user has one pool, that user's, whoever the
	// client is (PgBouncer's forced user): pool_size, max_user_connections and the user's
	// pool_mode are the server login's.
	poolUser := user
	if db.User != "" {
		poolUser = db.User
	}
	entry, err := s.srv.pools.get(cfg, db, poolUser)
	if err != nil {
		return pgerr.Fatal(pgerr.InternalError, "%v", err)
	}
	s.entry = entry
	// The entry's names, or copies of its strings: an idle client then holds none of its own.
	if *s.names == entry.names {
		s.names = &entry.names
	} else {
		n := *s.names
		if n.user == entry.key.user {
			n.user = entry.key.user
		}
		if n.dbName == entry.key.db {
			n.dbName = entry.key.db
		}
		s.names = &n
	}
	if s.kind.replication() {
		return s.loginReplication(cfg, pkt, startParams)
	}
	_, mode, _ := entry.snapshot()
	s.mode = mode
	s.prep, s.maxStmts = prepModeFor(cfg, mode), int32(cfg.MaxPreparedStatements)
	s.limits = timeLimits{query: cfg.QueryTimeout, idleTx: cfg.IdleTransactionTimeout, tx: cfg.TransactionTimeout}
	s.clientIdle = cfg.ClientIdleTimeout
	serverParams, err := s.poolReady(cfg)
	if err != nil {
		return err
	}
	notice, err := s.spellStart(cfg, serverParams, startParams)
	if err != nil {
		return err
	}
	s.initParams(cfg, serverParams, startParams)
	s.srv.register(s)
	return s.sendLoginAnswer(pkt, notice)
}

// poolReady is awaitPool without a wait when none is needed (the database is not held
// and its server parameters are known): a login on the loop goes to a goroutine only
// for the wait.
func (s *Session) poolReady(cfg *config.Config) (pool.Params, error) {
	if _, _, p := s.entry.snapshot(); p != nil && !s.srv.heldNow(s.dbName) {
		if err := s.srv.refuseDisabled(s.dbName); err != nil {
			return nil, err
		}
		return p, nil
	}
	var params pool.Params
	var err error
	s.offload(func() { params, err = s.awaitPool(cfg) })
	return params, err
}

// awaitPool waits, during login, while the database is held (PAUSE, SUSPEND, KILL) and
// for the server parameters shown to new clients (a server login on the pool's first
// client). The client counts as waiting meanwhile, in SHOW POOLS and SHOW CLIENTS, and
// once logged in its wait counts in SHOW STATS' wait_time, as PgBouncer adds a waiting
// login's wait there when it ends: the first server of a cold pool opens here, so the
// first request finds it idle and would otherwise show no wait at all.
func (s *Session) awaitPool(cfg *config.Config) (pool.Params, error) {
	s.srv.holdLogin(s, true)
	defer s.srv.holdLogin(s, false)
	if err := s.srv.gate(cfg, s.dbName); err != nil {
		return nil, err
	}
	ctx, cancel := waitContext(cfg)
	defer cancel()
	params, err := s.firstParams(ctx, cfg)
	if err != nil {
		return nil, serverError(cfg, err)
	}
	s.mu.Lock()
	s.stats.WaitTime += max(time.Since(time.Unix(0, s.waitSince)), 0) // since holdLogin
	s.mu.Unlock()
	return params, nil
}

// firstParams is pools.serverParams within the login's deadline. The pool's first server
// login may take server_connect_timeout (15 s by default, and its dial does not stop for
// the waiter's context) and a wait in the pool query_wait_timeout (120 s): a login waiting
// for them could hang past client_login_timeout (60 s), whose deadline only the client's
// socket kept. At the deadline the client gets PgBouncer's FATAL for a client still
// waiting for its pool's first server then (janitor.c); the server login goes on without
// it, and its connection serves the next client.
func (s *Session) firstParams(ctx context.Context, cfg *config.Config) (pool.Params, error) {
	e := s.entry
	deadline := s.loginDeadline(cfg)
	if _, _, p := e.snapshot(); p != nil || deadline.IsZero() {
		return s.srv.pools.serverParams(ctx, e, s)
	}
	type result struct {
		params pool.Params
		err    error
	}
	r, ok := untilDeadline(deadline, func() result {
		params, err := s.srv.pools.serverParams(ctx, e, s)
		return result{params, err}
	})
	if !ok {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "client_login_timeout (server down)").
			WithDetail("No server connection of the pool logged in within client_login_timeout (%v).", cfg.ClientLoginTimeout)
	}
	return r.params, r.err
}

// loginDeadline is when the login must be over: client_login_timeout from the client's
// connection, as PgBouncer counts it; zero for none.
func (s *Session) loginDeadline(cfg *config.Config) time.Time {
	if cfg.ClientLoginTimeout <= 0 {
		return time.Time{}
	}
	return time.Unix(0, s.connectedAt).Add(cfg.ClientLoginTimeout)
}

// loginWaitContext bounds a login's wait for a server: query_wait_timeout, and the
// login's deadline.
func (s *Session) loginWaitContext(cfg *config.Config) (context.Context, context.CancelFunc) {
	ctx, cancel := waitContext(cfg)
	dl := s.loginDeadline(cfg)
	if dl.IsZero() {
		return ctx, cancel
	}
	ctx, stop := context.WithDeadline(ctx, dl)
	return ctx, func() { stop(); cancel() }
}

// untilDeadline is untilDone until deadline. It bounds a login's waits on servers, whose
// dials do not stop for a waiter.
func untilDeadline[T any](deadline time.Time, f func() T) (v T, ok bool) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return untilDone(ctx, f)
}

// untilDone runs f on a goroutine of its own and waits for its result until ctx is done;
// ok is false when ctx ended first, and f then finishes without a waiter.
func untilDone[T any](ctx context.Context, f func() T) (v T, ok bool) {
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v = <-done:
		return v, true
	case <-ctx.Done():
		return v, false
	}
}

// negotiateVersion tells a client that asked for a newer 3.x minor version, or sent _pq_.
// protocol options, that pgmux speaks 3.0 without them. Like PostgreSQL, it answers
// before authentication.
func (s *Session) negotiateVersion(pkt *startup.Packet) error {
	var unsupported []string
	for _, p := range pkt.Params {
		if strings.HasPrefix(p.Key, "_pq_.") {
			unsupported = append(unsupported, p.Key)
		}
	}
	if pkt.Minor == 0 && len(unsupported) == 0 {
		return nil
	}
	return s.loginWrite(startup.NegotiateProtocolVersion(nil, 0, unsupported))
}

// sendLoginAnswer sends AuthenticationOk's followers: notice (PostgreSQL's about the
// startup values, nil for none), parameters, key data and ready.
func (s *Session) sendLoginAnswer(pkt *startup.Packet, notice []byte) error {
	// AuthenticationOk (9 bytes), a ParameterStatus per parameter (PostgreSQL 15 reports
	// 14, about 400 bytes), BackendKeyData (13), ReadyForQuery (6): in one pass, into a
	// buffer that fits the usual answer (the parameters are walked once, not to size it).
	b := wire.Auth(make([]byte, 0, 640), wire.AuthOK, nil)
	b = append(b, notice...)
	s.params.each(func(name, value string) { b = wire.ParameterStatus(b, name, value) })
	b = wire.BackendKeyData(b, s.cancelPID, s.cancelKey)
	b = wire.ReadyForQuery(b, 'I')
	s.mu.Lock()
	s.state = ClientIdle
	s.mu.Unlock()
	return s.loginWrite(b)
}

// loginWrite writes b to the client at once, during login (before any server is linked, so
// the session goroutine writes wr under wmu). It goes through the writer's raw socket
// path (wire.Writer.WriteNow) rather than net.Conn's Write: a login storm made the
// runtime start an OS thread for logins caught in that blocking-syscall path.
func (s *Session) loginWrite(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	lg := s.lgState()
	if lg != nil { // on the loop: this write may wait there (loginRaw)
		lg.writing = true
		defer func() { lg.writing = false }()
	}
	var err error
	if s.wr.Buffered() > 0 { // what loginHold held goes out with b, in one write
		if err = s.wr.Write(b); err == nil {
			err = s.wr.Flush()
		}
	} else {
		err = s.wr.WriteNow(b)
	}
	if lg != nil && err == nil {
		lg.answered = true // the login's next read waits for the client's answer first
	}
	return err
}

// loginHold keeps b, a login message the client needs no answer to before pgmux's next
// one (SCRAM's final message before AuthenticationOk), in the writer until the login's
// next write (loginWrite), which sends both in one call.
func (s *Session) loginHold(b []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.wr.Write(b) // smaller than the buffer: copied, never written here
}

// linkedServer returns the server now serving the client, or nil.
func (s *Session) linkedServer() *pool.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server
}

// Info is what SHOW CLIENTS reports about a session.
type Info struct {
	ID              uint64
	User, Database  string
	State           ClientState
	Remote          net.Addr
	ConnectedAt     time.Time
	PoolMode        config.PoolMode
	ServerID        uint64
	TLS             bool
	ApplicationName string
	Stats           SessionStats
	// PinReason says why a transaction-mode client keeps its server ("" when it does not).
	PinReason string
}

// Info returns a snapshot for the admin console.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := Info{ID: s.id, User: s.user, Database: s.dbName, State: s.state, Remote: s.remote(),
		ConnectedAt: time.Unix(0, s.connectedAt), PoolMode: s.mode, TLS: s.tls}
	if s.sessionWork != nil { // a parked client may have none: its counters went to its pool's
		in.Stats = s.stats
	}
	if s.server != nil {
		in.ServerID = s.server.ID
	}
	if s.state != ClientLogin { // until the login answer, the session goroutine sets params unlocked
		in.ApplicationName, _ = s.params.Get("application_name")
	}
	in.PinReason = s.pinned.String()
	return in
}
