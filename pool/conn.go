package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Lessee is whoever holds a leased connection. Pump runs on the connection's own reader
// goroutine for as long as the lease lasts: it reads the server's messages from c.Rd and
// returns nil once it has ended the lease with Release or Discard, the read error that
// broke the connection, or ErrLoopReads after LoopPark handed the reading to a loop.
type Lessee interface {
	Pump(c *Conn) error
}

// Tracker is the lessee layer's record of one server connection's session state, kept
// in Conn.Tracker across leases (pgmux's is package proxy's serverState: the settings it
// made and the statements it prepared on that server). The pool never reads it; it
// tells it what the pool itself did to the server's session.
type Tracker interface {
	// ServerReset is called once the reset query (Options.ResetQuery, server_reset_query)
	// has completed on the connection, with its text: what the query wiped is gone from
	// the server. It runs between leases, on the connection's reader goroutine, after the
	// last lessee's Release and before the next lease begins.
	ServerReset(query string)
}

// State of a server connection, as SHOW SERVERS reports it.
type State int32

const (
	StateLogin State = iota
	StateIdle
	StateActive
	StateTested
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateLogin:
		return "login"
	case StateIdle:
		return "idle"
	case StateActive:
		return "active"
	case StateTested:
		return "tested"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

var connIDs atomic.Uint64

// Conn is one logged-in server connection.
//
// Owners: the connection's reader goroutine (run) owns Rd and, while the connection is
// leased, runs the lessee's Pump; the current lessee (or the pool, while the connection
// is not leased) owns Wr, Params and Tracker; the pool's mu guards detached and the
// pool's lists; internal is guarded by its own mu; lessee, state, lastUsed, closing,
// reason and the cancel counts are atomics any goroutine may read. A released
// connection goes to the next lessee through the pool's mu (the idle list) or a
// waiter's channel, and its lessee box is swapped atomically: each orders one lessee's
// writes before the next lessee's reads. A reset query between two leases is handed to
// the reader goroutine and back through internal's mu. dedicated is set before the
// connection is handed out and never changes.
type Conn struct {
	ID      uint64
	Rd      *wire.Reader
	Wr      *wire.Writer
	PID     uint32
	Key     []byte
	Created time.Time
	// Params holds the server's current reported parameters; written only by the reader
	// goroutine or the lessee during its lease.
	Params Params
	// Tracker is the lessee layer's record of the server's session state, kept across
	// leases: set by a lessee during its lease (nil until one does), told by the pool
	// when its reset query has run (Tracker.ServerReset), never read by the pool.
	Tracker Tracker

	nc       net.Conn
	pool     *Pool
	network  string
	addr     string
	lessee   atomic.Pointer[lesseeBox]
	state    atomic.Int32
	lastUsed atomic.Int64 // unix nanos
	closing  atomic.Bool
	host     *Host                 // the cluster host it is on; nil for a single-host target
	attrs    SessionAttrs          // what the host had to fit at login
	reason   atomic.Pointer[error] // why the connection was closed, set once with closing
	detached bool                  // guarded by pool.mu: kept by one client outside the pool's size
	// dedicated: opened for one client alone (Pool.Dedicated), never reused; fixed
	// before the connection is handed out.
	dedicated bool
	retired   bool       // guarded by pool.mu: being closed by the pool's decision, out of its size
	internal  internalOp // guarded by the reader goroutine's ownership while not leased
	peek      peeker     // the goroutine leasing it off the idle list (peek.go)
	lr        loopRead   // reading by an event loop instead of the reader (loopread.go)
	closed    chan struct{}
	reported  atomic.Pointer[Reported] // Params' copy of four for the console (Reported)

	// Cancel requests in flight for this backend (HoldForCancel), and a release that
	// waits for them (heldRelease, with its reset in heldReset): PostgreSQL cancels
	// whatever the backend runs when the request lands, so the connection goes to
	// nobody else before the server has acknowledged it.
	cancels     atomic.Int32
	heldRelease atomic.Bool
	heldReset   atomic.Bool
}

type lesseeBox struct{ l Lessee }

// HoldForCancel marks a cancel request about to be sent for this backend: a Release
// from now on waits until UnholdCancel. Take it before checking that the lessee still
// runs what is to be cancelled, so that the check and the hold leave no gap.
func (c *Conn) HoldForCancel() { c.cancels.Add(1) }

// UnholdCancel ends a HoldForCancel, completing a release that waited for it.
func (c *Conn) UnholdCancel() {
	if c.cancels.Add(-1) == 0 && c.heldRelease.CompareAndSwap(true, false) {
		c.pool.release(c, c.heldReset.Load(), time.Time{})
	}
}

// releaseHeld reports whether a release must wait for cancel requests in flight (it is
// then completed by UnholdCancel).
func (c *Conn) releaseHeld(reset bool) bool {
	if c.cancels.Load() == 0 {
		return false
	}
	c.heldReset.Store(reset)
	c.heldRelease.Store(true)
	if c.cancels.Load() == 0 && c.heldRelease.CompareAndSwap(true, false) {
		return false // the last one ended meanwhile: release now
	}
	return true
}

// LeaseBox holds a Lessee for the connections it leases. A Lessee that leases many times
// (a client session, once per transaction) makes one with NewLeaseBox and returns it from
// LeaseBox, so that a lease stores a pointer instead of allocating one, and LeasedBy
// compares pointers. The box never changes after NewLeaseBox.
type LeaseBox = lesseeBox

// NewLeaseBox returns the box of l.
func NewLeaseBox(l Lessee) *LeaseBox { return &lesseeBox{l: l} }

// boxedLessee is a Lessee that keeps its own LeaseBox.
type boxedLessee interface {
	Lessee
	LeaseBox() *LeaseBox
}

// LeasedBy reports whether the connection is leased through box b.
func (c *Conn) LeasedBy(b *LeaseBox) bool { return c.lessee.Load() == b }

// internalOp is a query the pool itself runs (reset, health check) on a connection that
// is not leased.
//
// Owners: mu guards every field. The goroutine that starts the query sets them in
// startInternal: a releasing lessee's, a cancel's that completes a held release, or an
// acquirer's that runs server_check_query before handing the connection out. The
// connection's reader goroutine reads the answers (handleIdle) and calls done, so done
// runs on the reader goroutine, ordered after everything its starter did before
// startInternal.
type internalOp struct {
	mu      sync.Mutex
	active  bool
	pending int
	err     error
	done    func(err error)
}

// State reports the connection's state.
func (c *Conn) State() State { return State(c.state.Load()) }

// LastUsed reports when the connection was last released or leased.
func (c *Conn) LastUsed() time.Time { return time.Unix(0, c.lastUsed.Load()) }

// idleFor is how long c has been unused at now, by the wall clock as LastUsed keeps it:
// now.Sub(c.LastUsed()) without Sub's path for a time without a monotonic reading, which
// costs ~80 instructions at each acquire.
func (c *Conn) idleFor(now time.Time) time.Duration {
	return time.Duration(now.UnixNano() - c.lastUsed.Load())
}

// Addr reports the server address.
func (c *Conn) Addr() string { return c.addr }

// LocalAddr reports the local end of the server socket.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Socket reports the descriptor of c's socket (the one under TLS), or -1 once it is
// closed, and whether c speaks TLS. For the console (SHOW FDS, SOCKETS, SERVERS): it
// allocates, as SyscallConn does.
func (c *Conn) Socket() (fd int, tls bool) {
	fd = -1
	tls, _ = wire.ControlSocket(c.nc, func(f int) { fd = f })
	return fd, tls
}

// Pool returns the pool the connection belongs to.
func (c *Conn) Pool() *Pool { return c.pool }

// Lessee returns the current lessee, or nil.
func (c *Conn) Lessee() Lessee {
	if b := c.lessee.Load(); b != nil && b != lesseeGone {
		return b.l
	}
	return nil
}

func dialConn(ctx context.Context, p *Pool, t *Target) (*Conn, error) {
	// It is made, and its use begins, when the dial begins: a RECONNECT or a CloseIdleFor
	// during the dial and the login marks it as it marks the connections open then (the
	// dial may have reached the host RECONNECT is meant to leave).
	start := time.Now()
	network, addr := t.Network()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to server %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlive(true)
	}
	nc, rd, pid, key, params, err := login(ctx, nc, t)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &Conn{
		ID: connIDs.Add(1), Rd: rd, Wr: wire.NewWriter(nc), PID: pid, Key: key,
		Created: start, Params: params, nc: nc, pool: p, network: network, addr: addr,
		closed: make(chan struct{}),
	}
	c.Rd.Release()
	c.reported.Store(reportedOf(params))
	c.lastUsed.Store(start.UnixNano())
	if t.ConnectQuery != "" {
		if err := c.querySync(ctx, t.ConnectQuery); err != nil {
			nc.Close()
			return nil, fmt.Errorf("connect_query: %w", err)
		}
	}
	return c, nil
}

// querySync runs sql before the reader goroutine starts.
func (c *Conn) querySync(ctx context.Context, sql string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(noDeadline)
	}
	if _, err := c.nc.Write(wire.Query(nil, sql)); err != nil {
		return err
	}
	var qerr error
	for {
		typ, n, err := c.Rd.Next()
		if err != nil {
			return err
		}
		m, err := c.Rd.Message(n)
		if err != nil {
			return err
		}
		switch typ {
		case 'E':
			qerr, _ = pgerr.Parse(wire.Body(m))
		case 'S':
			if k, v, err := wire.ParseParameterStatus(wire.Body(m)); err == nil {
				c.Params.Set(string(k), string(v))
				c.noteReported(string(k), string(v))
			}
		case 'Z':
			return qerr
		}
	}
}

// run is the connection's reader goroutine.
func (c *Conn) run() {
	var err error
	c.pool.readers.Add(1)
	defer func() {
		c.pool.readers.Add(-1)
		if err == ErrLoopReads {
			return // a loop reads c now; it starts another reader when it hands c back
		}
		c.noteEnd()
		c.pool.remove(c, err)
	}()
	for {
		if b := c.lessee.Load(); b != nil {
			if err = b.l.Pump(c); err != nil {
				return
			}
			continue
		}
		c.Rd.Release()
		c.lr.keep.Store(false) // between leases: the next one may go to the loop again
		var typ byte
		var n int
		if typ, n, err = c.Rd.Next(); err == nil {
			if c.lessee.Load() != nil {
				continue
			}
			err = c.handleIdle(typ, n)
		}
		if err != nil {
			c.idleFailed(err)
			return
		}
	}
}

// lesseeGone marks a connection whose reader has exited while it was not leased: lease
// swaps nil for its lessee, so no lease can begin after it.
var lesseeGone = &lesseeBox{}

// testHookIdleFailed, when set by a test, runs when the reader of a connection that is
// not leased has found it broken, before it marks the connection gone.
var testHookIdleFailed atomic.Pointer[func(*Conn)]

// idleFailed ends the reader of a connection that broke while not leased (its server
// terminated it: a shutdown, a failover). The pool may have handed it out meanwhile,
// before it learned of the failure: that lessee's Pump is run on a reader that returns
// the failure, so the lessee hears of it as of any broken connection instead of waiting
// for an answer that never comes.
func (c *Conn) idleFailed(err error) {
	if hook := testHookIdleFailed.Load(); hook != nil {
		(*hook)(c)
	}
	for {
		if c.lessee.CompareAndSwap(nil, lesseeGone) {
			return
		}
		b := c.lessee.Load()
		if b == nil {
			continue // the lessee let go meanwhile
		}
		c.Rd.Reset(failedSource{err})
		c.lr.keep.Store(true) // this reader tells the lessee: no loop takes c now
		_ = b.l.Pump(c)
		if c.lessee.CompareAndSwap(b, lesseeGone) {
			return
		}
	}
}

// failedSource is a reader's source after its connection failed: every read returns the
// failure.
type failedSource struct{ err error }

func (f failedSource) Read([]byte) (int, error) { return 0, f.err }

// handleIdle consumes a message that arrived while the connection is not leased: the
// answer to an internal query, or something unsolicited.
func (c *Conn) handleIdle(typ byte, n int) error {
	m, err := c.Rd.Message(n)
	if err != nil {
		return err
	}
	op := &c.internal
	op.mu.Lock()
	active := op.active
	op.mu.Unlock()
	switch typ {
	case 'S':
		if k, v, err := wire.ParseParameterStatus(wire.Body(m)); err == nil {
			c.Params.Set(string(k), string(v))
			c.NoteParameter(string(k), string(v))
		}
	case 'E':
		pe, _ := pgerr.Parse(wire.Body(m))
		if !active {
			return fmt.Errorf("server sent an error while idle: %w", pe)
		}
		op.mu.Lock()
		if op.err == nil {
			op.err = pe
		}
		op.mu.Unlock()
	case 'Z':
		if !active {
			return errors.New("unexpected ReadyForQuery from an idle server")
		}
		op.mu.Lock()
		op.pending--
		var done func(error)
		var opErr error
		if op.pending <= 0 {
			op.active = false
			done, opErr = op.done, op.err
			op.done, op.err = nil, nil
		}
		op.mu.Unlock()
		if done != nil {
			done(opErr)
		}
	}
	return nil
}

// startInternal sends sql and calls done from the reader goroutine when it completes.
func (c *Conn) startInternal(sql string, done func(error)) error {
	c.Recall() // the reader goroutine reads the answer
	op := &c.internal
	op.mu.Lock()
	op.active, op.pending, op.err, op.done = true, 1, nil, done
	op.mu.Unlock()
	if err := c.Wr.Write(wire.Query(nil, sql)); err != nil {
		return err
	}
	return c.Wr.Flush()
}

// Release ends the lease on a clean connection (no transaction open, nothing pending).
// With reset, the pool runs server_reset_query before the next lease.
func (c *Conn) Release(reset bool) { c.ReleaseAt(reset, time.Time{}) }

// ReleaseAt is Release with the caller's clock reading now (an event loop's, read once
// per wake-up), for the connection's last use and a waiter's wait; zero: the pool reads
// the clock.
func (c *Conn) ReleaseAt(reset bool, now time.Time) {
	c.unlease()
	c.pool.release(c, reset, now)
}

// Discard ends the lease on a connection that cannot be reused and closes it. The
// reason is kept (CloseReason) and logged when the connection goes (log_disconnections).
func (c *Conn) Discard(reason error) {
	c.unlease()
	if reason == nil {
		reason = errDiscarded
	}
	c.closeFor(fmt.Errorf("discarded by its client: %w", reason))
}

var errDiscarded = errors.New("no reason given")

// unlease ends the current lease; a connection marked gone stays so.
func (c *Conn) unlease() {
	for {
		b := c.lessee.Load()
		if b == nil || b == lesseeGone || c.lessee.CompareAndSwap(b, nil) {
			return
		}
	}
}

// Reasons the pool closes connections, as CloseReason and the disconnect log give them.
var (
	errLifetime   = errors.New("server_lifetime reached")
	errIdle       = errors.New("server_idle_timeout reached")
	errOverSize   = errors.New("pool over its size (reload or reserve)")
	errReconnect  = errors.New("RECONNECT or reload asked for new connections")
	errCheck      = errors.New("server_check_query failed")
	errReset      = errors.New("server_reset_query failed")
	errPoolClosed = errors.New("pool closed")
	errEvicted    = errors.New("idle connection closed to make room under max_db_connections/max_user_connections")
	errKilled     = errors.New("closed by KILL")
	errPaused     = errors.New("closed by PAUSE")
	errUnfit      = errors.New("its host went down or changed role")
	errExclusive  = errors.New("a statement needs its database to itself (DROP DATABASE, ALTER DATABASE … RENAME, CREATE DATABASE … TEMPLATE)")
)

// closeFor closes the connection, remembering the first reason given.
func (c *Conn) closeFor(reason error) {
	if c.closing.CompareAndSwap(false, true) {
		c.reason.Store(&reason)
		c.state.Store(int32(StateClosed))
		c.nc.Close() // the reader's read fails and it removes the connection
		c.Recall()   // (a loop reads under RawConn.Control: never a reused descriptor)
	}
}

// CloseReason reports why the connection was closed by pgmux: nil while it is open or
// when the server or the network ended it.
func (c *Conn) CloseReason() error {
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return nil
}

// Closed is closed once the connection's reader goroutine has exited.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// SetDeadline sets the server socket's deadline (query_timeout and the like).
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Cancel sends a CancelRequest for this connection's backend over a new connection.
func (c *Conn) Cancel(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	b := make([]byte, 12, 16+len(c.Key))
	binary.BigEndian.PutUint32(b[0:], uint32(12+len(c.Key)))
	binary.BigEndian.PutUint32(b[4:], 80877102)
	binary.BigEndian.PutUint32(b[8:], c.PID)
	b = append(b, c.Key...)
	if _, err := nc.Write(b); err != nil {
		return err
	}
	// The server closes the connection once it has read the request; wait for that, but
	// no longer than ctx allows (cancel_wait_timeout).
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	_ = nc.SetReadDeadline(dl)
	var one [1]byte
	if _, err := nc.Read(one[:]); errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("server %s did not acknowledge the cancel request in time: %w", c.addr, err)
	}
	return nil
}
