//go:build linux

package proxy

import (
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
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
	p := &parker{epfd: epfd, log: log, done: done}
	go p.loop()
	return p
}

// park registers fd, s's socket, and reports whether it did; the caller's goroutine then
// returns and s.resume runs on a new one when the socket is readable.
func (p *parker) park(s *Session, fd int32) bool {
	if p == nil || fd < 0 {
		return false
	}
	p.mu.Lock()
	if int(fd) >= len(p.byFD) {
		p.byFD = append(p.byFD, make([]*Session, int(fd)+1-len(p.byFD))...)
	}
	p.byFD[fd] = s
	s.parkedFD = fd
	p.parked++
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd}
	err := epollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	if err == syscall.ENOENT {
		err = epollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}
	if err != nil {
		p.mu.Lock()
		if p.byFD[fd] == s {
			p.byFD[fd] = nil
		}
		p.mu.Unlock()
		return false
	}
	return true
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
	p.byFD[fd] = nil
	_ = epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	return true
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
		err := rc.Read(func(fd uintptr) bool {
			n, werr = epollWaitNow(int(fd), events)
			return n > 0 || (werr != nil && werr != syscall.EINTR)
		})
		select {
		case <-p.done: // every session has ended (Shutdown waits for them)
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
			p.mu.Lock()
			var s *Session
			if fd >= 0 && int(fd) < len(p.byFD) {
				s, p.byFD[fd] = p.byFD[fd], nil
			}
			p.mu.Unlock()
			if s != nil {
				go s.resume()
			}
		}
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
	var expired []*Session
	p.mu.Lock()
	for fd, s := range p.byFD {
		if s != nil && s.clientIdle > 0 && time.Since(time.Unix(0, s.idleSince)) >= s.clientIdle {
			p.byFD[fd] = nil
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
