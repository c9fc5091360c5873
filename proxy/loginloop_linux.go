//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/proxy/evloop"
)

// Logins on the client loops (issue 14, point 2). A client accepted while client_loop is
// on and client TLS is off is handed to a loop as a bare descriptor: no goroutine, no
// net.Conn and no poll descriptor of the runtime's. The loop runs the login — the same
// code as a login goroutine's (negotiate, login, authenticate) — as a coroutine
// (iter.Pull, kept for the next login once this one ended: loginworker_linux.go): where
// a read or write would wait, the coroutine yields to the loop, which resumes it at the
// socket's next event. A login's round trips are then loop wake-ups
// shared with every other event of that loop. (A login paced by its client costs what it
// did on a goroutine: each round trip wakes the process either way. In a storm of
// logins the loop serves several per wake-up; bench/README.md has the figures.)
//
// What may wait for something other than the client's socket goes to a goroutine and
// back (offload): auth_query, a cleartext password checked against a SCRAM verifier (a
// key derivation), a paused database or a pool's first server login (awaitPool), a
// cancel request's forwarding. Once logged in, a transaction-mode client waits for its
// first request on the loop still without a net.Conn (loginConn.loggedIn): that request
// gives it one (serveLoop), and if it stays idle the sweep parks it from its bare
// descriptor. Any other client gets its net.Conn (resume, as a parked client does) and a
// goroutine, as before. client_login_timeout is kept by the loop's sweep (at its
// one-second resolution).
//
// Owners: the login's state (loopLogin) belongs to the loop goroutine and to the
// coroutine it resumes, which runs only while the loop waits for it; an offloaded step
// runs while the coroutine is suspended, and its end is posted to the loop.

// loopLogin is a login running on a client loop.
type loopLogin struct {
	// w is the coroutine that runs it, from its start (loginworker_linux.go); yield is
	// w's, set when the coroutine takes the login up.
	w     *loginWorker
	yield func(loginWait) bool
	// work is the step an offload asked for, run by a goroutine while the coroutine waits.
	work      func()
	offloaded bool      // work is running: socket events do not resume the coroutine
	deadline  time.Time // client_login_timeout; zero: none
	timedOut  bool      // the sweep found the deadline passed: the next wait fails
	stopped   bool      // the coroutine was stopped (the loop ended): it cannot wait
	writing   bool      // loginWrite is under way (set under s.wmu): its writes may wait
	// answered: loginWrite has sent the client something since the login last read; the
	// client answers it after a round trip, so the next read waits for the socket's event
	// before it tries (a read tried at once would fail with EAGAIN: a system call per
	// round trip). The descriptor is edge-triggered and registered since the login began,
	// so what arrives meanwhile is an event the loop resumes the login with.
	answered bool
	// resting: the login waits for the client's answer to what it wrote (awaitAnswer), or
	// it ended with the client waiting on the loop for its first request: a round trip,
	// for which the loop need not look for more before it waits (evloop.Loop.Rest).
	resting  bool
	nclients int64
}

// loginWait is what the coroutine waits for when it yields.
type loginWait uint8

const (
	waitSocket  loginWait = iota // the client's socket: resume at its next event
	waitOffload                  // work, on a goroutine: resume when it is done
	loginDone                    // the login ended: the worker waits for the next (loginworker_linux.go)
)

// loginsOnLoop reports whether a new client logs in on a client loop.
func (s *Server) loginsOnLoop() bool {
	cfg := s.Config()
	if cfg == nil || !cfg.ClientLoop || len(s.loops) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsConf == nil
}

// acceptNext accepts the next client: a connection, or (on a raw listener when logins run
// on the loops) a bare descriptor and a nil connection.
func (s *Server) acceptNext(ln net.Listener) (net.Conn, int, error) {
	if rl, ok := ln.(rawListener); ok && s.loginsOnLoop() {
		fd, err := rl.acceptFD()
		return nil, fd, err
	}
	nc, err := ln.Accept()
	return nc, -1, err
}

// closeAccepted closes what acceptNext returned.
func closeAccepted(nc net.Conn, fd int) {
	if nc != nil {
		_ = nc.Close()
		return
	}
	_ = syscall.Close(fd)
}

// loginOnLoop starts the login of the client on descriptor fd on its loop.
func (s *Server) loginOnLoop(fd int) {
	sess := s.newLoopLogin(fd)
	sess.home().postLogin(sess)
}

// newLoopLogin makes the session of a client on descriptor fd whose login runs on a loop.
func (s *Server) newLoopLogin(fd int) *Session {
	n := s.nclients.Add(1)
	s.loopLogins.Add(1)
	c := &loginConn{}
	c.fd.Store(int32(fd))
	sess := newSession(s, c, s.newID())
	c.s = sess
	sess.lw = &loopWork{lg: &loopLogin{nclients: n}}
	return sess
}

// postLogin hands a login (to start, or to resume after its offloaded step) to the loop.
func (p *parker) postLogin(s *Session) {
	if !p.ev.Post(handover{s: s, login: true}) {
		s.loginOffLoop() // the server is going down: a goroutine finishes it
	}
}

// loginOffLoop runs a login that has not started on a goroutine instead.
func (s *Session) loginOffLoop() {
	lg := s.lgState()
	s.lw.lg = nil
	if lg.w != nil { // started: cannot move; end it (the loop is gone)
		lg.w.stop()
		return
	}
	if err := s.toRuntimeConn(); err != nil {
		s.closeLoginFD()
		s.srv.connDone()
		return
	}
	go s.run(lg.nclients)
}

// loginHanded continues a login posted to the loop: its start, or its offloaded step done.
func (p *parker) loginHanded(s *Session) {
	lg := s.lgState()
	if lg == nil {
		return
	}
	if lg.w == nil {
		fd := s.fd
		p.mu.Lock()
		p.placeLocked(s, fd)
		s.onLoop = loopLoggingIn
		p.mu.Unlock()
		if err := p.ev.Add(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|evloop.ET); err != nil {
			p.mu.Lock()
			p.byFD[fd] = nil
			s.onLoop = loopOff
			p.mu.Unlock()
			s.lw.lg = nil
			s.log().Warn("cannot poll a new client on the loop", zap.Error(err))
			s.closeLoginFD()
			s.srv.connDone()
			return
		}
		lg.w = p.takeWorker()
		lg.w.s = s
	}
	lg.offloaded = false
	p.stepLogin(s, lg)
}

// loginEvent resumes a login waiting for its socket (an event of it came).
func (p *parker) loginEvent(s *Session) {
	if lg := s.lgState(); lg != nil && !lg.offloaded {
		p.stepLogin(s, lg)
	}
}

// stepLogin resumes the coroutine until it waits again or ends.
func (p *parker) stepLogin(s *Session, lg *loopLogin) {
	w, ok := lg.w.next()
	if !ok {
		return // the worker was stopped (the loop ends)
	}
	if lg.resting {
		lg.resting = false
		p.ev.Rest()
	}
	if w == loginDone {
		// runLogin has placed the client where it goes next (another goroutine may run
		// it already: only lg, which nothing else holds now, is looked at).
		p.putWorker(lg.w)
		return
	}
	if w == waitOffload {
		lg.offloaded = true
		work := lg.work
		lg.work = nil
		go func() {
			work()
			p.postLogin(s)
		}()
	}
}

// expiredLoginsLocked marks the logins past client_login_timeout, whose next wait fails,
// and returns them; the loop's sweep calls it with p.mu held and resumes them after.
func (p *parker) expiredLoginsLocked(now time.Time) []*Session {
	var out []*Session
	for _, s := range p.byFD {
		if s != nil && s.onLoop == loopLoggingIn {
			if lg := s.lgState(); lg != nil && !lg.deadline.IsZero() && now.After(lg.deadline) && !lg.timedOut {
				lg.timedOut = true
				out = append(out, s)
			}
		}
	}
	return out
}

// offload runs work off the loop when the session logs in on one (the coroutine waits
// for it), else at once.
func (s *Session) offload(work func()) {
	lg := s.lgNow()
	if lg == nil {
		work()
		return
	}
	lg.work = work
	if !lg.yield(waitOffload) {
		lg.stopped = true
	}
}

// lgNow is the session's loop login while its coroutine runs, else nil.
func (s *Session) lgNow() *loopLogin {
	if lg := s.lgState(); lg != nil && lg.yield != nil {
		return lg
	}
	return nil
}

// runLogin is the login coroutine's body: run's login part, then the hand-over of the
// logged-in client to where it waits for its first request.
func (s *Session) runLogin() {
	lg := s.lgState()
	cfg := s.srv.Config()
	s.rd.MaxMessage = cfg.MaxPacketSize
	if cfg.ClientLoginTimeout > 0 {
		lg.deadline = time.Now().Add(cfg.ClientLoginTimeout)
	}
	s.srv.loggingIn(s, true)
	pkt, err := s.negotiate(cfg)
	if err == nil && pkt != nil {
		if err = s.login(cfg, pkt, lg.nclients); err != nil {
			err = loginTimedOut(cfg, err)
		}
	}
	s.srv.loggingIn(s, false)
	home := s.home()
	fd := s.fd
	home.mu.Lock()
	if int(fd) < len(home.byFD) && home.byFD[fd] == s {
		home.byFD[fd] = nil
	}
	s.onLoop = loopOff
	home.mu.Unlock()
	if err != nil || pkt == nil {
		s.loginFailed(err)
		s.lw.lg = nil
		s.closeLoginFD()
		s.srv.unregister(s) // registered before its last answer, whose write may have failed
		s.srv.connDone()
		return
	}
	s.lw.lg = nil
	s.logConnected(cfg)
	if !s.isAdmin() && !s.kind.replication() && s.rd.Buffered() == 0 && s.loopOK() {
		// It waits for its first request on the loop as it is, without a net.Conn: a
		// request makes one (serveLoop), and a client that stays idle is parked (the
		// sweep; detachLocked takes the bare descriptor as it is).
		// Its registration stays the login's (edge-triggered: what came since the
		// login's last read is still reported), made again only to drop the room to
		// write that a login write which waited asked for.
		rearm := false
		s.ncMu.Lock()
		if c, ok := s.nc.(*loginConn); ok {
			c.loggedIn = true
			rearm = c.out
		}
		s.ncMu.Unlock()
		if s.loopPark(rearm) {
			lg.resting = true
			return
		}
	}
	if err := s.toRuntimeConn(); err != nil {
		s.log().Warn("cannot make a logged-in client's connection", zap.Error(err))
		s.closeLoginFD()
		if s.kind.replication() {
			s.dropReplication(err) // its own server, which no one else would ever close
		}
		s.end(err)
		return
	}
	home.forget(fd)
	go func() {
		if !s.parkAfterLogin(lg.nclients) {
			s.loop()
		}
	}()
}

// toRuntimeConn gives a client served from its bare socket on the loop its net.Conn in the
// runtime's poller (as resume does for a parked one), for a goroutine to wait on; what
// the reader holds, and what the writer has not sent, stays.
//
// The writer moves to the net.Conn too (Retarget) when s.wmu is free: another goroutine
// may be writing to the client through it (a Pump, a server's loop relaying an answer),
// and waiting for that writer here could stall the loop behind a client that does not
// read. A writer left on the loginConn sends through the net.Conn all the same: every
// use of a backed loginConn goes to it.
func (s *Session) toRuntimeConn() error {
	w := s.wmu.TryLock()
	s.ncMu.Lock()
	err := s.toRuntimeConnLocked(w)
	s.ncMu.Unlock()
	if w {
		s.unlockW()
	}
	return err
}

// toRuntimeConnLocked is toRuntimeConn with s.ncMu held, and s.wmu too when wmu is set
// (the writer is moved only then).
func (s *Session) toRuntimeConnLocked(wmu bool) error {
	c, _ := s.nc.(*loginConn)
	if c == nil || c.shut || s.ncEnd&ncClosed != 0 {
		return net.ErrClosed
	}
	rt, err := c.backed(true)
	if err != nil {
		return err
	}
	s.nc = rt.conn
	s.rd.SetSource(rt.conn)
	if wmu && s.wr != nil {
		s.wr.Retarget(rt.conn) // what the loop left unsent (a full socket) goes first
	}
	return nil
}

// closeLoginFD closes the descriptor of a client that logged in (or failed to) on the
// loop and has no net.Conn, and reports whether the client had none; the descriptor
// leaves the epoll set with it. Only the client's owner calls it (its login, the loop
// serving it, its goroutine, its end), under s.ncMu: a FATAL written meanwhile by another
// goroutine (tell, under s.ncMu) goes to this socket or to none, never to the next one
// given the number.
func (s *Session) closeLoginFD() bool {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	c, ok := s.nc.(*loginConn)
	if ok {
		c.closeFD()
	}
	return ok
}

// shutRawLocked shuts down the socket of a client that has no net.Conn (it logged in on
// the loop) and reports whether it had none; s.ncMu is held. Another goroutine ending
// such a client (closeAndWake) while the loop may hold it — reading or answering its
// requests (serveLoop, pumpOnLoop), finishing its login — must not close the descriptor: the
// loop's read would go to whatever socket takes the number next. The loop's next read
// or write fails instead, and the session's end closes the descriptor (closeLoginFD).
func (s *Session) shutRawLocked() bool {
	c, ok := s.nc.(*loginConn)
	if ok {
		c.shutdown()
	}
	return ok
}

// loginConn is a client's socket while it logs in on a loop: reads and writes are made
// directly, and where one would wait the login's coroutine yields to the loop (loginRaw).
// Its deadlines are the login's (client_login_timeout, kept by the loop's sweep). Once
// logged in, the client keeps it (rawClient) for as long as the loop serves it: its
// requests are read and its answers written on the bare socket, without the net.Conn,
// the runtime poller's registration and the descriptor lock each read and write of one
// costs. A park takes the bare descriptor as it is (detachLocked); a goroutine that takes
// the client over, which may have to wait for its socket, gets a net.Conn first
// (toGoroutine). Where the loop's own write finds the socket full it fails rather than
// stall the loop (its answers use TryFlush and a goroutine for the rest; what else it
// writes is short: an error, a ParseComplete it answers itself).
//
// Owners: the session's goroutine (the login's coroutine, then the loop or the goroutine
// serving the client) reads and writes through it; other goroutines only Write (tell)
// and Close, under s.ncMu, as loggedIn and shut are set; fd is atomic, so a close and a
// hand-on (toRuntimeConn, detachLocked) take the descriptor once.
type loginConn struct {
	fd atomic.Int32 // -1 once closed or handed on
	// loggedIn: the login is over and the client waits on the loop without a net.Conn
	// (rawClient); Close closes the descriptor then (see there). Set under s.ncMu.
	loggedIn bool
	shut     bool // Close has shut the socket down
	out      bool // its registration asks for EPOLLOUT too (a write waited)
	// served: the loop has read a request of the client's since its login (or its resume)
	// on the loop (the loop alone sets it and reads it: the sweep runs on the loop too).
	served bool
	s      *Session
	raw    loginRaw
	// rt: the net.Conn the socket was handed to when a read or write outside the login
	// had to wait for it (backing); every use of the connection goes through it from then
	// on. mu orders its making against the descriptor's close, shutdown and hand-on, and
	// each read or write of the bare descriptor holds it shared, as an *os.File's holds
	// its descriptor: goroutines other than the owner write to a served client (a server
	// read by another loop, relayBatch; a Pump), and the owner's close (closeFD) must not
	// give the number to the next socket under such a write.
	rt atomic.Pointer[backing]
	mu sync.RWMutex
	// rdl, wdl: the read and write deadlines set while the socket is bare (under mu). A
	// bare read or write does not wait; one that must (backed) waits under them, as it
	// would have on a net.Conn they were set on (tell's bound for a client that does not
	// read).
	rdl, wdl time.Time
}

// backing is the net.Conn a bare client's socket moved to, and its RawConn.
type backing struct {
	conn net.Conn
	raw  syscall.RawConn
}

// backed returns the net.Conn the socket moved to, making it first when wait is set and
// there is none: a read or write that must wait for the socket and does not run in the
// login's coroutine (the loop's own Flush of an answer that filled the client's socket, a
// FATAL told by another goroutine) waits in the runtime's poller, as it did when every
// client got a net.Conn at its first request. Any goroutine; the descriptor is not closed
// meanwhile: its close, shutdown and hand-on take c.mu too, and a goroutine other than
// the client's owner never closes it while the owner may use it (shutRawLocked).
func (c *loginConn) backed(wait bool) (*backing, error) {
	if b := c.rt.Load(); b != nil || !wait {
		return b, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.rt.Load(); b != nil {
		return b, nil
	}
	fd := c.fd.Load()
	if fd < 0 || c.shut {
		return nil, net.ErrClosed
	}
	nc, err := accepted(fd)
	if err != nil {
		return nil, err
	}
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	if !c.rdl.IsZero() {
		_ = nc.SetReadDeadline(c.rdl)
	}
	if !c.wdl.IsZero() {
		_ = nc.SetWriteDeadline(c.wdl)
	}
	b := &backing{conn: nc, raw: raw}
	c.rt.Store(b)
	c.fd.Store(-1) // the descriptor is nc's now
	c.s.srv.runtimeConns.Add(1)
	return b, nil
}

func (c *loginConn) Read(b []byte) (int, error) {
	if err := c.awaitAnswer(); err != nil {
		return 0, err
	}
	for {
		if rt, _ := c.backed(false); rt != nil {
			return rt.conn.Read(b)
		}
		c.mu.RLock()
		fd := c.fd.Load()
		if fd < 0 {
			c.mu.RUnlock()
			if c.rt.Load() != nil {
				continue // moved to its net.Conn meanwhile (backed)
			}
			return 0, net.ErrClosed
		}
		n, err := syscall.Read(int(fd), b)
		c.mu.RUnlock()
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if c.s.lgNow() == nil {
				if _, werr := c.backed(true); werr != nil {
					return 0, werr
				}
				continue
			}
			if werr := c.wait(); werr != nil {
				return 0, werr
			}
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write writes what the socket takes now and never waits: only other goroutines write
// through it (tell, a FATAL on the way out), under s.ncMu; the login's own writes go
// through the wire package's path (loginRaw), which waits on the loop.
func (c *loginConn) Write(b []byte) (int, error) {
	if rt, _ := c.backed(false); rt != nil {
		return rt.conn.Write(b)
	}
	done := 0
	c.mu.RLock()
	defer c.mu.RUnlock()
	fd := int(c.fd.Load())
	if rt := c.rt.Load(); fd < 0 && rt != nil {
		return rt.conn.Write(b) // moved to its net.Conn meanwhile (backed)
	}
	for done < len(b) && fd >= 0 {
		n, err := syscall.Write(fd, b[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// awaitAnswer waits for the socket's next event before a read that follows a login
// write (loopLogin.answered).
func (c *loginConn) awaitAnswer() error {
	if lg := c.s.lgNow(); lg != nil && lg.answered {
		lg.answered = false
		lg.resting = true
		err := c.wait()
		lg.resting = false
		if err != nil {
			return err
		}
		if rd := c.s.rd; rd != nil {
			rd.Ready() // the answer is there: one read takes it (not the header, then the rest)
		}
	}
	return nil
}

// wait suspends the login until the socket's next event; it fails once the login is past
// its deadline, or when it does not run on a loop's coroutine (it cannot wait then).
func (c *loginConn) wait() error {
	lg := c.s.lgNow()
	if lg == nil {
		return net.ErrClosed
	}
	if lg.timedOut {
		return os.ErrDeadlineExceeded
	}
	if lg.stopped || !lg.yield(waitSocket) {
		lg.stopped = true
		return net.ErrClosed
	}
	if lg.timedOut {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Close shuts the socket down during the login (any goroutine, under s.ncMu): the login's
// next read or write fails, on the loop, which then closes the descriptor (closeFD).
// Closing it here could hand its number to another socket while the loop still polls it.
// Once logged in, Close closes the descriptor: it is called by the client's owner (its
// end), or by closeAndWake for a client it took out of the loop (unpark); a client the
// loop still holds (a request of its being served, serveLoop) is shut down instead
// (shutRawLocked), and its end closes it.
func (c *loginConn) Close() error {
	if c.loggedIn {
		c.closeFD()
		return nil
	}
	return c.shutdown()
}

// shutdown shuts the socket down once, leaving the descriptor open (under s.ncMu).
func (c *loginConn) shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return nil
	}
	if rt := c.rt.Load(); rt != nil {
		c.shut = true
		var err error
		if cerr := rt.raw.Control(func(fd uintptr) { err = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) }); cerr != nil {
			return cerr
		}
		return err
	}
	if fd := c.fd.Load(); fd >= 0 {
		c.shut = true
		return syscall.Shutdown(int(fd), syscall.SHUT_RDWR)
	}
	return nil
}

// closeFD closes the descriptor once (the epoll set forgets it). close(2) of a socket
// without SO_LINGER does not wait, so it is made without the runtime's blocking-syscall
// entry, which would wake its monitor thread at each departure (closer_linux.go).
func (c *loginConn) closeFD() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fd := c.fd.Swap(-1); fd >= 0 {
		_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
	} else if rt := c.rt.Load(); rt != nil {
		_ = rt.conn.Close()
	}
}

// takeFD hands the bare descriptor on (a park, detachLocked): -1 when there is none
// (closed, or moved to a net.Conn: backed).
func (c *loginConn) takeFD() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fd.Swap(-1)
}

// descriptor is the client's socket (socketFD).
func (c *loginConn) descriptor() int32 { return c.fd.Load() }

func (c *loginConn) LocalAddr() net.Addr {
	if rt, _ := c.backed(false); rt != nil {
		return rt.conn.LocalAddr()
	}
	return sockAddr(int(c.fd.Load()), true)
}

func (c *loginConn) RemoteAddr() net.Addr {
	if rt, _ := c.backed(false); rt != nil {
		return rt.conn.RemoteAddr()
	}
	return sockAddr(int(c.fd.Load()), false)
}

// SetDeadline and the others: the login's deadline is the loop's to keep, and a bare
// client's reads and writes on the loop do not wait; once backed (backed), its net.Conn's,
// which gets those set before (rdl, wdl).
func (c *loginConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *loginConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.rdl, t, net.Conn.SetReadDeadline)
}

func (c *loginConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.wdl, t, net.Conn.SetWriteDeadline)
}

// setDeadline sets a deadline on the net.Conn the socket moved to, or keeps it in d (rdl
// or wdl) for the one backed makes.
func (c *loginConn) setDeadline(d *time.Time, t time.Time, set func(net.Conn, time.Time) error) error {
	if rt := c.rt.Load(); rt != nil {
		return set(rt.conn, t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt := c.rt.Load(); rt != nil {
		return set(rt.conn, t)
	}
	*d = t
	return nil
}

// SyscallConn gives the wire package the descriptor path, through loginRaw.
func (c *loginConn) SyscallConn() (syscall.RawConn, error) {
	c.raw.c = c
	return &c.raw, nil
}

// PollableSocket marks the connection for the wire package's descriptor path.
func (*loginConn) PollableSocket() {}

// loginRaw is loginConn's syscall.RawConn: the wire package's reads and writes call f with
// the descriptor, and where f says it would wait, the login's coroutine yields.
type loginRaw struct{ c *loginConn }

// open is the descriptor while the connection has one: a closed one (-1) fails as a
// closed net.Conn does, never reaching a system call (which would fail with EBADF).
// r.c.mu is held shared until the descriptor's use is over. A descriptor moved to its
// net.Conn meanwhile (backed) is errMoved: the caller uses the net.Conn.
func (r *loginRaw) open() (uintptr, error) {
	fd := r.c.fd.Load()
	if fd < 0 {
		if r.c.rt.Load() != nil {
			return 0, errMoved
		}
		return 0, net.ErrClosed
	}
	return uintptr(fd), nil
}

// errMoved is loginRaw.open's answer for a socket that moved to its net.Conn (backed)
// after the caller looked: not a failure, the caller goes on through the net.Conn.
var errMoved = errors.New("socket moved to its net.Conn")

func (r *loginRaw) Control(f func(fd uintptr)) error {
	for {
		if rt, _ := r.c.backed(false); rt != nil {
			return rt.raw.Control(f)
		}
		r.c.mu.RLock()
		fd, err := r.open()
		if err == nil {
			f(fd)
		}
		r.c.mu.RUnlock()
		if err != errMoved {
			return err
		}
	}
}

func (r *loginRaw) Read(f func(fd uintptr) bool) error {
	if err := r.c.awaitAnswer(); err != nil {
		return err
	}
	for {
		if rt, _ := r.c.backed(false); rt != nil {
			return rt.raw.Read(f)
		}
		_, done, err := r.attempt(f)
		if err == errMoved {
			continue
		}
		if done || err != nil {
			return err
		}
		if r.c.s.lgNow() == nil { // not the login's: waits in the runtime's poller
			if _, err := r.c.backed(true); err != nil {
				return err
			}
			continue
		}
		if err := r.c.wait(); err != nil {
			return err
		}
	}
}

// attempt runs f with the descriptor; done: f made its read or write.
func (r *loginRaw) attempt(f func(fd uintptr) bool) (fd uintptr, done bool, err error) {
	r.c.mu.RLock()
	defer r.c.mu.RUnlock()
	if fd, err = r.open(); err == nil {
		done = f(fd)
	}
	return fd, done, err
}

func (r *loginRaw) Write(f func(fd uintptr) bool) error {
	for {
		if rt, _ := r.c.backed(false); rt != nil {
			return rt.raw.Write(f)
		}
		fd, done, err := r.attempt(f)
		if err == errMoved {
			continue
		}
		if done || err != nil {
			return err
		}
		if lg := r.c.s.lgState(); lg == nil || !lg.writing {
			// Not the login's own write (loginWrite): it waits in the runtime's poller.
			if _, err := r.c.backed(true); err != nil {
				return err
			}
			continue
		}
		if !r.c.out { // the socket is full: its events now include room to write
			if err := r.c.s.home().ev.Register(int32(fd), syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP|evloop.ET); err != nil {
				return err
			}
			r.c.out = true
		}
		if err := r.c.wait(); err != nil {
			return err
		}
	}
}

// rawClient reports whether the client is served from its bare socket, without a
// net.Conn, as it has been since its login (or its resume) on the loop (the loop or the
// session's goroutine asks).
func (s *Session) rawClient() bool {
	c, ok := s.nc.(*loginConn)
	return ok && c.rt.Load() == nil
}

// servedOnLoop notes that the loop read a request of a client it serves from its bare
// socket (not an event with nothing to read: the login's registration reports one
// after the login's last read).
func (s *Session) servedOnLoop() {
	if c, ok := s.nc.(*loginConn); ok && !c.served {
		c.served = true
	}
}

// freshOnLoop reports whether the client waits on the loop from its bare socket and has
// sent nothing since its login there (the sweep asks, under the parker's lock).
func (s *Session) freshOnLoop() bool {
	c, ok := s.nc.(*loginConn)
	return ok && !c.served
}
