//go:build linux

package proxy

import (
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/evloop"
)

// parker holds idle clients without a goroutine each: a client that has sent nothing for
// a while leaves its goroutine (and stack) behind, and its socket waits in an epoll set;
// when bytes arrive, a fresh goroutine picks the session up where it left off. It is
// also a client loop (loop_linux.go): the evloop.Handler of its event loop (ev), which
// owns the epoll set, its eventfd and the inbox other goroutines post to.
//
// Owners: mu guards byFD, parked and seen (sessions park and unpark from their own
// goroutines) and the sessions' onLoop; lastSweep and servers belong to the loop
// goroutine.
type parker struct {
	ev   *evloop.Loop[handover]
	log  *zap.Logger
	done <-chan struct{} // the server has shut down: the loop ends
	mu   sync.Mutex
	// byFD holds the parked sessions by descriptor: a slice, 8 bytes a descriptor,
	// where a map would cost about 30 per parked client.
	byFD []*Session
	// parked counts parks since memory was last handed back; seen is its value at the
	// last sweep. When a wave of parks has ended (no new ones for a sweep), the memory
	// their goroutine stacks held goes back to the OS. resumed counts the parked clients
	// woken since the last sweep (Event): many of them end the wave unreleased.
	parked, seen, resumed int
	lastSweep             time.Time
	// servers holds the server connections the loop reads, by descriptor (loop
	// goroutine only); an entry is stale once its connection is not InLoop.
	servers []*pool.Conn
	home    pool.LoopHome // this loop, as connections name it
	// workers are login coroutines between logins, and workerUses how many logins took
	// one since the last sweep (loop goroutine only, loginworker_linux.go).
	workers    []*loginWorker
	workerUses int
	// registerServer is registerFD, made once (by the first adopted) so that c.OnFD
	// allocates nothing, and regErr its result (loop goroutine only).
	registerServer func(fd uintptr)
	regErr         error
	// bufs are read buffers passed between the clients and servers this loop reads: a
	// parked client's goes to the next read (loop goroutine only).
	bufs wire.BufStack
	// acceptors are the listeners lent to the loop (acceptloop_linux.go; loop goroutine).
	acceptors []*loopAcceptor
}

// handover is a server (or why none) for a request queued on the client loop; without
// a session, a server connection for the loop to read (Adopt) or to hand back (Recall).
type handover struct {
	s      *Session
	c      *pool.Conn
	err    error
	recall bool
	login  bool          // s's login on the loop: to start, or its offloaded step is done
	acc    *loopAcceptor // a listener lent to the loop, or to drop (acceptloop_linux.go)
}

func newParker(log *zap.Logger, done <-chan struct{}) *parker {
	ev, err := evloop.New[handover]()
	if err != nil {
		log.Warn("cannot create epoll set: idle clients keep their goroutines", zap.Error(err))
		return nil
	}
	p := &parker{ev: ev, log: log, done: done}
	p.home.Looper = p
	go p.loop()
	return p
}

// newLoops makes the server's client loops: n, or one per P (GOMAXPROCS) when n is 0, at
// most maxLoops. Each is an epoll set with its goroutine; sessions are spread over them at
// creation. None when the first cannot be made.
func newLoops(log *zap.Logger, done <-chan struct{}, n int) []*parker {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	n = min(max(n, 1), maxLoops)
	loops := make([]*parker, 0, n)
	for range n {
		p := newParker(log, done)
		if p == nil {
			break
		}
		loops = append(loops, p)
	}
	if len(loops) == 0 {
		return nil
	}
	return loops
}

// maxLoops bounds the number of client loops on a machine with many cores (each is an
// epoll set, an eventfd and a goroutine).
const maxLoops = 64

// park registers fd, s's socket, and reports whether it did; the caller's goroutine then
// returns and s.resume runs on a new one when the socket is readable.
func (p *parker) park(s *Session, fd int32) bool {
	if p == nil || fd < 0 {
		return false
	}
	p.mu.Lock()
	p.placeLocked(s, fd)
	p.parked++
	p.mu.Unlock()
	if err := p.ev.Register(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLONESHOT); err != nil {
		p.mu.Lock()
		if p.byFD[fd] == s {
			p.byFD[fd] = nil
		}
		p.mu.Unlock()
		return false
	}
	return true
}

// placeLocked records s as the session of descriptor fd; p.mu is held.
func (p *parker) placeLocked(s *Session, fd int32) {
	if int(fd) >= len(p.byFD) {
		p.byFD = append(p.byFD, make([]*Session, int(fd)+1-len(p.byFD))...)
	}
	p.byFD[fd] = s
	s.parkedFD = fd
}

// unpark takes s out of the set if it is parked there and reports whether it was; the
// caller then resumes it.
func (p *parker) unpark(s *Session) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fd := s.parkedFD
	if fd < 0 || int(fd) >= len(p.byFD) || p.byFD[fd] != s {
		return false
	}
	if s.onLoop == loopBusy || s.onLoop == loopLoggingIn {
		return false // its request (or its login) runs on the loop, or waits there for a server
	}
	p.byFD[fd] = nil
	s.onLoop = loopOff
	p.ev.Del(int32(fd))
	return true
}

// loopPark registers s, whose socket is fd, as waiting for its next request on the
// client loop (clientloop.go). The descriptor is edge-triggered and stays in the set
// while the client is the loop's; rearm (off the loop) registers it again, which also
// queues an event if it is readable already.
func (p *parker) loopPark(s *Session, fd int32, rearm bool) bool {
	if p == nil || fd < 0 {
		return false
	}
	p.mu.Lock()
	p.placeLocked(s, fd)
	s.onLoop = loopParked
	p.mu.Unlock()
	if !rearm {
		return true
	}
	if err := p.ev.Register(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|evloop.ET); err != nil {
		p.leaveLoop(s)
		return false
	}
	return true
}

// leaveLoop forgets s as the loop's: a goroutine of its own serves it from now on. Its
// descriptor stays in the set; its events are ignored until it parks for the loop again.
func (p *parker) leaveLoop(s *Session) {
	p.mu.Lock()
	if fd := s.parkedFD; fd >= 0 && int(fd) < len(p.byFD) && p.byFD[fd] == s {
		p.byFD[fd] = nil
	}
	s.onLoop = loopOff
	p.mu.Unlock()
}

// waitsOnLoop reports whether s waits in the loop for its next request now: an event of
// its socket marks it busy (Event) before any of the request is read.
func (p *parker) waitsOnLoop(s *Session) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.onLoop == loopParked
}

// moveOut takes s, which goes to another loop, out of this one: the loop forgets it and
// its descriptor leaves the set, so none of its events comes here any more.
func (p *parker) moveOut(s *Session, fd int32) {
	p.leaveLoop(s)
	p.ev.Del(fd)
}

// clients counts the sessions the loop holds (Server.LoopClients).
func (p *parker) clients() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.byFD {
		if s != nil {
			n++
		}
	}
	return n
}

// forget removes fd from the epoll set, where a parked socket's entry stays (disabled)
// after its one event: a detached socket's descriptor is closed on resume while the
// socket lives on under another, and a stale entry must not outlive it.
func (p *parker) forget(fd int32) {
	p.ev.Del(int32(fd))
}

// sweep ends parked clients idle past client_idle_timeout and, after many parks, returns
// freed stack memory to the OS.
func (p *parker) sweep() {
	p.lastSweep = time.Now()
	p.retireWorkers()
	var expired, idle []*Session
	p.mu.Lock()
	for fd, s := range p.byFD {
		if s != nil && s.onLoop == loopParked && (time.Since(time.Unix(0, s.idleSince)) >= parkDelay(s.srv.nclients.Load()) ||
			s.freshOnLoop() && s.srv.nclients.Load() >= eagerParkClients) {
			// (A client that has sent nothing since its login on the loop is parked at
			// once when the server holds many: a storm of idle logins, as parkAfterLogin.)
			// Idle on the loop: parked the ordinary way, which gives back its working
			// state and its net.Conn (its descriptor leaves the set first: a detached
			// socket is registered again under a duplicate).
			p.byFD[fd] = nil
			s.onLoop = loopOff
			p.ev.Del(int32(fd))
			idle = append(idle, s)
			continue
		}
		if s != nil && s.onLoop != loopBusy && s.onLoop != loopLoggingIn && s.clientIdle > 0 &&
			time.Since(time.Unix(0, s.idleSince)) >= s.clientIdle {
			p.byFD[fd] = nil
			s.onLoop = loopOff
			p.ev.Del(int32(fd))
			expired = append(expired, s)
		}
	}
	logins := p.expiredLoginsLocked(p.lastSweep)
	if p.resumed*8 >= p.parked {
		// The wave's clients are coming back (pgbench's, logged in one after the other and
		// idle until the last was in): what their parks gave back is in use again, and a
		// collection and FreeOSMemory now would only stall the loop and have the pages
		// faulted in again. The wave is forgotten; the next one is counted afresh.
		p.parked, p.seen = 0, 0
	}
	p.resumed = 0
	release := p.parked >= 128 && p.parked == p.seen
	p.seen = p.parked
	if release {
		p.parked, p.seen = 0, 0
	}
	p.mu.Unlock()
	for _, s := range expired {
		s.expired.Store(true)
		go s.resume()
	}
	for _, s := range logins {
		p.loginEvent(s) // past client_login_timeout: its wait fails (or its next one)
	}
	for _, s := range idle {
		s.idleFromLoop() // on the loop: a goroutine each would outweigh what parking saves
	}
	if release {
		p.log.Debug("returning parked clients' memory to the OS")
		go releaseMemory() // a collection: the loop's clients are not held up meanwhile
	}
}

// releaseMemory hands the memory a wave of logins used back to the OS once its clients
// have parked: the goroutine stacks, and the read and write buffers their logins took
// from the wire package's sync.Pool (16 KB each, one or two per login in flight). A
// pool keeps what was put back until the second collection after (the first moves it
// to the pool's victim cache), and an idle process may not collect for minutes: the
// first collection here moves them, FreeOSMemory's frees them and returns the pages.
func releaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// goneEvents are the epoll events that say a client's peer closed its side.
const goneEvents = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
