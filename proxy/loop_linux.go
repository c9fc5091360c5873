//go:build linux

package proxy

import (
	"errors"
	"os"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
)

// The client loops' event handling (clientloop.go, clientloop_server.go): each parker's
// goroutine waits for its epoll set, serves the clients and server connections whose
// descriptors are ready, and does what other goroutines posted to its inbox (servers for
// queued requests, servers to read or hand back). The set itself, idle parking and the
// sweep are in park_linux.go.

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
			if s.onLoop == loopLoggingIn {
				p.mu.Unlock()
				p.loginEvent(s)
				continue
			}
			if s.onLoop != loopOff {
				parked := s.onLoop == loopParked
				s.onLoop = loopBusy
				p.mu.Unlock()
				if parked {
					s.serveLoop(events[i].Events)
				} else {
					s.lw.readable = true // its request is on the loop: read after it
					s.lw.saw(events[i].Events)
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
	case h.login:
		p.loginHanded(h.s)
	case h.s == nil && !p.open():
		h.c.HandBack() // parked as the loop ended: its reader reads it
	case h.s == nil:
		p.adopted(h.c)
	default:
		h.s.handed(h.c, h.err)
	}
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
