//go:build linux

package proxy

import (
	"net"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/evloop"
)

// The client loops' event handling (clientloop.go, clientloop_server.go): each parker is
// the evloop.Handler of its loop (package proxy/evloop drives the epoll set, its eventfd
// and its inbox): it serves the clients and server connections whose descriptors are
// ready, and does what other goroutines posted (servers for queued requests, servers to
// read or hand back, logins). Idle parking and the sweep are in park_linux.go.

// loop serves the parker's loop (evloop.Loop.Run) until the server shuts down; then the
// servers it reads go back to their readers (a reader goroutine each), which meet the
// pool's close.
func (p *parker) loop() {
	if err := p.ev.Run(p, time.Second, p.done); err != nil {
		p.log.Error("epoll wait failed; the client loop stops", zap.Error(err))
	}
	for fd, c := range p.servers {
		if c != nil && c.InLoop() && p.reads(c) {
			c.HandBack()
		}
		p.servers[fd] = nil
	}
	p.stopWorkers()
	p.dropAcceptors()
}

// Tick is evloop.Handler's: the sweep, every second.
func (p *parker) Tick() { p.sweep() }

// Posted is evloop.Handler's: what was posted (post, Adopt, Recall, postLogin).
func (p *parker) Posted(h handover) { p.handle(h, &p.bufs) }

// Event is evloop.Handler's: a descriptor in the set is ready. It is a server the loop
// reads, a client logging in, or a client parked or waiting on the loop.
func (p *parker) Event(fd int32, events uint32) {
	if len(p.acceptors) > 0 {
		if la := p.acceptorOf(fd); la != nil {
			p.acceptOn(la)
			return
		}
	}
	if int(fd) < len(p.servers) {
		if c := p.servers[fd]; c != nil && c.State() == pool.StateClosed {
			p.servers[fd] = nil // closed: the descriptor may be a new socket's already
		} else if c != nil && c.InLoop() {
			if p.reads(c) {
				p.serverEvent(c, events)
			} else {
				p.drop(c) // another loop reads it now: a stale registration
			}
			return
		}
	}
	p.mu.Lock()
	var s *Session
	if fd >= 0 && int(fd) < len(p.byFD) {
		s = p.byFD[fd]
	}
	if s == nil {
		p.mu.Unlock()
		return
	}
	if s.onLoop == loopLoggingIn {
		p.mu.Unlock()
		p.loginEvent(s)
		return
	}
	if s.onLoop != loopOff {
		parked := s.onLoop == loopParked
		s.onLoop = loopBusy
		p.mu.Unlock()
		if parked {
			s.serveLoop(events, p.now(), &p.bufs)
		} else {
			s.lw.readable = true // its request is on the loop: read after it
			s.lw.saw(events)
			if events&goneEvents != 0 {
				s.abandonWait() // waiting in its pool's queue: out of it now (gone.go)
			}
		}
		return
	}
	p.byFD[fd] = nil
	p.resumed++
	p.mu.Unlock()
	if events&goneEvents != 0 && !s.isAdmin() && !s.expired.Load() && s.departed(fd) {
		// Parked, and gone: no net.Conn to read its Terminate. Ended here as a departure
		// read on the loop is (endOnLoop).
		if s.endsAtOnce() {
			s.endDeparted()
		} else {
			goroutineEnds.Add(1)
			go s.endDeparted()
		}
		return
	}
	if s.resumeOnLoop(p, fd) {
		s.serveLoop(events, p.now(), &p.bufs)
		return
	}
	go s.resume()
}

// post hands a queued request its server (or why none) on the loop; any goroutine. Once
// the loop has ended the poster does it.
func (p *parker) post(s *Session, c *pool.Conn, err error) {
	if h := (handover{s: s, c: c, err: err}); !p.ev.Post(h) {
		p.handle(h, nil) // not on the loop: the shared pool
	}
}

// now is when the loop last woke up (evloop.Loop.Now): the current time for what the loop
// serves in that wake-up. The loop's goroutine only.
func (p *parker) now() time.Time { return p.ev.Now() }

// open reports whether the loop still runs (servers may be parked on it).
func (p *parker) open() bool { return p.ev.Open() }

// Adopt is pool.Looper's: c's reader goroutine hands c to the loop to read.
func (p *parker) Adopt(c *pool.Conn) { p.post(nil, c, nil) }

// Recall is pool.Looper's: someone needs c's reader goroutine back (a lease to another
// kind of lessee, an internal query, a close).
func (p *parker) Recall(c *pool.Conn) {
	if h := (handover{c: c, recall: true}); !p.ev.Post(h) {
		p.handle(h, nil) // not on the loop: the shared pool
	}
}

var _ pool.Looper = (*parker)(nil)

// adopted registers c's descriptor (edge-triggered: registering again queues an event
// for what is ready) and relays what its reader had buffered. The registration is made
// under c.OnFD, which holds the descriptor open: c may be closed meanwhile (a KILL, a
// reconnect, its server's end), and its number registered after that was closed, or
// was another socket's already (a client's, a server's), which this loop would then
// poll as c's.
func (p *parker) adopted(c *pool.Conn) {
	if !c.InLoop() || !p.reads(c) {
		return // recalled meanwhile (and maybe parked on another loop since)
	}
	fd := c.LoopFD()
	if fd >= len(p.servers) {
		p.servers = append(p.servers, make([]*pool.Conn, fd+1-len(p.servers))...)
	}
	p.servers[fd] = c
	if p.registerServer == nil {
		p.registerServer = p.registerFD
	}
	p.regErr = net.ErrClosed // stays when OnFD finds c closed
	if !c.OnFD(p.registerServer) || p.regErr != nil {
		p.servers[fd] = nil
		c.KeepReader()
		return
	}
	p.serverEvent(c, 0)
}

// registerFD is registerServer's body: the registration of a server's descriptor that
// the loop reads, its result in regErr (loop goroutine only).
func (p *parker) registerFD(fd uintptr) {
	p.regErr = p.ev.Register(int32(fd), syscall.EPOLLIN|syscall.EPOLLRDHUP|evloop.ET)
}

// serverEvent relays what a server the loop reads has sent, to its lessee; an idle
// connection's bytes (an unsolicited message, its end) go to its reader goroutine. The
// lessee may be a client of another loop: the relay runs beside that loop's work for
// the client as Pump runs beside a session goroutine (under s.wmu and s.mu), so the
// server is not moved (moving it cost more than it saved: clientloop_server.go).
//
// A server stays in the loop across leases, so its next lessee may be one whose answers
// need the reader goroutine (pumpsOnLoop: a listening client, whose ReadyForQuery waits
// for its notifications' fence; the loops turned off by a reload): those go back to it.
func (p *parker) serverEvent(c *pool.Conn, events uint32) {
	s, ok := c.Lessee().(*Session)
	if !ok || !s.pumpsOnLoop(c) {
		c.HandBack()
		return
	}
	s.pumpOnLoop(c, events&goneEvents != 0, p.now(), &p.bufs)
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
func (p *parker) unpoll(c *pool.Conn) { c.OnFD(p.ev.Unpoll) }

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

// handle does what was posted: on the loop, or by the poster once the loop has ended.
func (p *parker) handle(h handover, bufs *wire.BufStack) {
	switch {
	case h.acc != nil:
		p.acceptorHanded(h.acc)
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
		h.s.handed(h.c, h.err, p.now(), bufs)
	}
}
