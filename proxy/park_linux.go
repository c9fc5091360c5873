//go:build linux

package proxy

import (
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
)

// parker holds idle clients without a goroutine each: a client that has sent nothing for
// a while leaves its goroutine (and stack) behind, and its socket waits in an epoll set;
// when bytes arrive, a fresh goroutine picks the session up where it left off.
//
// The loop waits for the epoll set itself to become readable in Go's netpoller (an epoll
// descriptor is readable while it holds events), then takes the events with a zero-timeout
// epoll_wait; the set is changed with epoll_ctl. All of these are RawSyscalls: none of
// them blocks, and the runtime's blocking-syscall entry wakes its monitor thread (sysmon)
// when every P was idle, which then polls every 20 µs for a while: with a blocking
// epoll_wait that was a wake-up per resumed client, and a thread held by the loop.
//
// Owners: mu guards byFD, parked and seen (sessions park and unpark from their own
// goroutines); lastSweep and the epoll wait belong to the loop goroutine.
type parker struct {
	epfd int
	log  *zap.Logger
	done <-chan struct{} // the server has shut down: the loop closes epfd and returns
	mu   sync.Mutex
	// byFD holds the parked sessions by descriptor: a slice, 8 bytes a descriptor,
	// where a map would cost about 30 per parked client.
	byFD []*Session
	// parked counts parks since memory was last handed back; seen is its value at the
	// last sweep. When a wave of parks has ended (no new ones for a sweep), the memory
	// their goroutine stacks held goes back to the OS.
	parked, seen int
	lastSweep    time.Time
	// The client loop's inbox (clientloop.go): servers handed to requests queued on the
	// loop, posted by any goroutine under mu; evfd, in the epoll set, wakes the loop when
	// awake says it may be waiting.
	inbox, spare []handover
	evfd         int
	awake        atomic.Bool
	// ended is set under mu when the loop has returned (the server shut down): what is
	// posted after that is done by the poster (post, Recall) and servers are not parked.
	ended bool
	// servers holds the server connections the loop reads, by descriptor (loop
	// goroutine only); an entry is stale once its connection is not InLoop.
	servers []*pool.Conn
	del     func(fd uintptr) // takes fd out of the set (made once: unpoll allocates nothing)
	home    pool.LoopHome    // this loop, as connections name it
}

// handover is a server (or why none) for a request queued on the client loop; without
// a session, a server connection for the loop to read (Adopt) or to hand back (Recall).
type handover struct {
	s      *Session
	c      *pool.Conn
	err    error
	recall bool
}

func newParker(log *zap.Logger, done <-chan struct{}) *parker {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err == nil {
		if err = syscall.SetNonblock(epfd, true); err != nil {
			_ = syscall.Close(epfd)
		}
	}
	if err != nil {
		log.Warn("cannot create epoll set: idle clients keep their goroutines", zap.Error(err))
		return nil
	}
	p := &parker{epfd: epfd, log: log, done: done, evfd: -1}
	p.del = func(fd uintptr) { _ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) }
	p.home.Looper = p
	if fd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); e == 0 {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if epollCtl(epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) == nil {
			p.evfd = int(fd)
		} else {
			_ = syscall.Close(int(fd))
		}
	}
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

// maxLoops bounds the number of client loops (Session.loopIdx is a byte).
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
	if err := p.register(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLONESHOT); err != nil {
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

// register (re)registers fd in the set for events: a registration made again also
// queues an event for what is ready already.
func (p *parker) register(fd int32, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: fd}
	err := epollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	if err == syscall.ENOENT {
		err = epollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}
	return err
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
	if s.onLoop == loopBusy {
		return false // its request runs on the loop, or waits there for a server
	}
	p.byFD[fd] = nil
	s.onLoop = loopOff
	_ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
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
	if err := p.register(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP|epollET); err != nil {
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

// forget removes fd from the epoll set, where a parked socket's entry stays (disabled)
// after its one event: a detached socket's descriptor is closed on resume while the
// socket lives on under another, and a stale entry must not outlive it.
func (p *parker) forget(fd int32) {
	_ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
}

func (p *parker) loop() {
	events := make([]syscall.EpollEvent, 128)
	f := os.NewFile(uintptr(p.epfd), "parked clients")
	rc, err := f.SyscallConn()
	if err != nil {
		p.log.Error("cannot wait for parked clients; parking stops", zap.Error(err))
		return
	}
	var armed time.Time // the read deadline set: the next sweep's time
	for {
		if next := p.lastSweep.Add(time.Second); next != armed {
			if err := f.SetReadDeadline(next); err != nil {
				p.log.Error("cannot wait for parked clients; parking stops", zap.Error(err))
				return
			}
			armed = next
		}
		n := 0
		var werr error
		p.awake.Store(false)
		err := rc.Read(func(fd uintptr) bool {
			n, werr = epollWaitNow(int(fd), events)
			return n > 0 || (werr != nil && werr != syscall.EINTR) || p.posted()
		})
		p.awake.Store(true)
		select {
		case <-p.done: // every session has ended (Shutdown waits for them)
			p.end()
			_ = f.Close()
			return
		default:
		}
		if time.Since(p.lastSweep) >= time.Second {
			p.sweep()
		}
		if err == nil {
			err = werr
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			p.log.Error("epoll wait failed; parking stops", zap.Error(err))
			return
		}
		for i := 0; i < n; i++ {
			fd := events[i].Fd
			if int(fd) == p.evfd {
				var b [8]byte
				_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 8)
				continue
			}
			if int(fd) < len(p.servers) {
				if c := p.servers[fd]; c != nil && c.State() == pool.StateClosed {
					p.servers[fd] = nil // closed: the descriptor may be a new socket's already
				} else if c != nil && c.InLoop() {
					if p.reads(c) {
						p.serverEvent(c)
					} else {
						p.drop(c) // another loop reads it now: a stale registration
					}
					continue
				}
			}
			p.mu.Lock()
			var s *Session
			if fd >= 0 && int(fd) < len(p.byFD) {
				s = p.byFD[fd]
			}
			if s == nil {
				p.mu.Unlock()
				continue
			}
			if s.onLoop != loopOff {
				parked := s.onLoop == loopParked
				s.onLoop = loopBusy
				p.mu.Unlock()
				if parked {
					s.serveLoop()
				} else {
					s.lw.readable = true // its request is on the loop: read after it
				}
				continue
			}
			p.byFD[fd] = nil
			p.mu.Unlock()
			go s.resume()
		}
		p.drain()
	}
}

// post hands a queued request its server (or why none) on the loop; any goroutine.
func (p *parker) post(s *Session, c *pool.Conn, err error) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		p.handle(handover{s: s, c: c, err: err})
		return
	}
	p.inbox = append(p.inbox, handover{s: s, c: c, err: err})
	p.wakeLocked()
	p.mu.Unlock()
}

// end is the loop's last step: what was posted is done, and every server connection it
// reads goes back to its reader goroutine, which meets the pool's close. From now on
// posts are done by their posters.
func (p *parker) end() {
	p.mu.Lock()
	p.ended = true
	if p.evfd >= 0 {
		_ = syscall.Close(p.evfd)
		p.evfd = -1
	}
	p.mu.Unlock()
	p.drain()
	for fd, c := range p.servers {
		if c != nil && c.InLoop() && p.reads(c) {
			c.HandBack()
		}
		p.servers[fd] = nil
	}
}

// open reports whether the loop still runs (servers may be parked on it).
func (p *parker) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.ended
}

// wakeLocked wakes the loop if it may be waiting, after something was posted; p.mu is
// held, so the eventfd is not closed under it (end).
func (p *parker) wakeLocked() {
	if !p.awake.Load() && p.evfd >= 0 {
		one := uint64(1)
		_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p.evfd), uintptr(unsafe.Pointer(&one)), 8)
	}
}

// Adopt is pool.Looper's: c's reader goroutine hands c to the loop to read.
func (p *parker) Adopt(c *pool.Conn) { p.post(nil, c, nil) }

// Recall is pool.Looper's: someone needs c's reader goroutine back (a lease to another
// kind of lessee, an internal query, a close).
func (p *parker) Recall(c *pool.Conn) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		p.handle(handover{c: c, recall: true})
		return
	}
	p.inbox = append(p.inbox, handover{c: c, recall: true})
	p.wakeLocked()
	p.mu.Unlock()
}

var _ pool.Looper = (*parker)(nil)

// adopted registers c's descriptor (edge-triggered: registering again queues an event
// for what is ready) and relays what its reader had buffered.
func (p *parker) adopted(c *pool.Conn) {
	if !c.InLoop() || !p.reads(c) {
		return // recalled meanwhile (and maybe parked on another loop since)
	}
	fd := c.LoopFD()
	if fd >= len(p.servers) {
		p.servers = append(p.servers, make([]*pool.Conn, fd+1-len(p.servers))...)
	}
	p.servers[fd] = c
	if err := p.register(int32(fd), syscall.EPOLLIN|syscall.EPOLLRDHUP|epollET); err != nil {
		p.servers[fd] = nil
		c.KeepReader()
		return
	}
	p.serverEvent(c)
}

// serverEvent relays what a server the loop reads has sent, to its lessee; an idle
// connection's bytes (an unsolicited message, its end) go to its reader goroutine. The
// lessee may be a client of another loop: the relay runs beside that loop's work for
// the client as Pump runs beside a session goroutine (under s.wmu and s.mu), so the
// server is not moved (moving it cost more than it saved: clientloop_server.go).
func (p *parker) serverEvent(c *pool.Conn) {
	s, ok := c.Lessee().(*Session)
	if !ok {
		c.HandBack()
		return
	}
	s.pumpOnLoop(c)
}

// reads reports whether c is this loop's to read (while c.InLoop): only this loop can
// change that.
func (p *parker) reads(c *pool.Conn) bool { return c.LoopOf() == &p.home }

// drop stops polling c's descriptor, which c's reading leaves this loop; loop only.
func (p *parker) drop(c *pool.Conn) {
	if fd := c.LoopFD(); fd < len(p.servers) && p.servers[fd] == c {
		p.servers[fd] = nil
	}
	p.unpoll(c)
}

// unpoll takes c's descriptor out of the set; any goroutine. Under c.OnFD: once c is
// closed its number may be another socket's, whose registration must stay.
func (p *parker) unpoll(c *pool.Conn) { c.OnFD(p.del) }

// parkServer hands c's reading to the loop l (pool.Conn.LoopPark) from c's reader
// goroutine; the loop that read c last, if another, stops polling its descriptor first.
func parkServer(c *pool.Conn, l *parker) bool {
	if !l.open() {
		return false
	}
	if prev := c.LoopOf(); prev != nil && prev != &l.home {
		prev.Looper.(*parker).unpoll(c)
	}
	return c.LoopPark(&l.home)
}

// posted reports whether the inbox holds anything (the loop checks before it waits).
func (p *parker) posted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inbox) > 0
}

// drain continues the requests whose servers were handed over, on the loop.
func (p *parker) drain() {
	for {
		p.mu.Lock()
		in := p.inbox
		p.inbox, p.spare = p.spare[:0], nil
		p.mu.Unlock()
		if len(in) == 0 {
			p.mu.Lock()
			if p.spare == nil {
				p.spare = in
			}
			p.mu.Unlock()
			return
		}
		for i := range in {
			h := in[i]
			in[i] = handover{}
			p.handle(h)
		}
		p.mu.Lock()
		if p.spare == nil {
			p.spare = in[:0]
		}
		p.mu.Unlock()
	}
}

// handle does what was posted: on the loop, or by the poster once the loop has ended.
func (p *parker) handle(h handover) {
	switch {
	case h.recall && !p.reads(h.c):
		h.c.Recall() // it moved to another loop meanwhile: ask that one
	case h.recall:
		h.c.HandBack()
	case h.s == nil && !p.open():
		h.c.HandBack() // parked as the loop ended: its reader reads it
	case h.s == nil:
		p.adopted(h.c)
	default:
		h.s.handed(h.c, h.err)
	}
}

// epollCtl is epoll_ctl(2) as a RawSyscall (it never blocks).
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// epollWaitNow is epoll_pwait(2) with a zero timeout as a RawSyscall: the events ready
// now, none if there are none.
func epollWaitNow(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sweep ends parked clients idle past client_idle_timeout and, after many parks, returns
// freed stack memory to the OS.
func (p *parker) sweep() {
	p.lastSweep = time.Now()
	var expired, idle []*Session
	p.mu.Lock()
	for fd, s := range p.byFD {
		if s != nil && s.onLoop == loopParked && time.Since(time.Unix(0, s.idleSince)) >= parkDelay(s.srv.nclients.Load()) {
			// Idle on the loop: parked the ordinary way, which gives back its working
			// state and its net.Conn (its descriptor leaves the set first: a detached
			// socket is registered again under a duplicate).
			p.byFD[fd] = nil
			s.onLoop = loopOff
			_ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
			idle = append(idle, s)
			continue
		}
		if s != nil && s.onLoop != loopBusy && s.clientIdle > 0 &&
			time.Since(time.Unix(0, s.idleSince)) >= s.clientIdle {
			p.byFD[fd] = nil
			s.onLoop = loopOff
			_ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			expired = append(expired, s)
		}
	}
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
	for _, s := range idle {
		s.idleFromLoop() // on the loop: a goroutine each would outweigh what parking saves
	}
	if release {
		p.log.Debug("returning parked clients' memory to the OS")
		releaseMemory()
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

// epollET is EPOLLET as the uint32 an EpollEvent holds (syscall's constant is negative).
const epollET = 1 << 31
