//go:build linux

package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"go.uber.org/zap"
)

// Clients accepted on the first client loop. While logins run on the loops, the accept
// goroutine of a raw listener lends the listener to loop 0: its descriptor joins the
// loop's epoll set (level-triggered), and the loop accepts a client when the set reports
// it and starts its login there and then (or posts it to its own loop). Accepted by the
// goroutine, each client cost a wake-up of that goroutine in the runtime's poller, a post
// to the loop (an eventfd write and read) and a second accept4 that found none waiting:
// pgbench -C, one login per transaction, made 5 system calls more a connection
// (bench/README.md).
//
// The goroutine waits meanwhile, and takes the listener back when the loop gives it back:
// logins no longer run on the loops (a reload turned client TLS or client_loop on or
// off; the loop accepts that client as the goroutine would, then gives the listener
// back), an accept failed (the goroutine meets the error again and backs off as before),
// the server no longer serves clients, or the loop ended. Closing the listener
// (rawListener.Close) first has the loop drop it, so the loop never polls a descriptor
// whose number a new socket may take.
//
// Owners: a loopAcceptor's on, and the parker's acceptors, are the loop goroutine's; back
// is closed once (giveBack); closing is set by Close, on any goroutine.
type loopAcceptor struct {
	s       *Server
	ln      rawListener
	fd      int32 // the listener's descriptor in the loop's set (ln.f's)
	back    chan struct{}
	once    sync.Once
	closing atomic.Bool
	on      bool
}

// loopAccepts counts the clients accepted on a loop (LoopAccepts, tests).
var loopAccepts atomic.Uint64

// lendLoop lends ln, a raw listener, to loop 0 (lend); other listeners are never lent.
func (s *Server) lendLoop(ln net.Listener) (closed bool) {
	rl, ok := ln.(rawListener)
	return ok && s.lend(rl)
}

// lend lends ln to loop 0 and waits until the loop gives it back; it reports whether ln
// was closed meanwhile (the accept goroutine then ends). It returns at once, lending
// nothing, when logins do not run on the loops.
func (s *Server) lend(ln rawListener) (closed bool) {
	if !s.loginsOnLoop() {
		return false
	}
	p := s.loops[0]
	la := &loopAcceptor{s: s, ln: ln, fd: -1, back: make(chan struct{})}
	_ = ln.rc.Control(func(fd uintptr) { la.fd = int32(fd) })
	a := ln.acc
	a.lendMu.Lock()
	if closed := a.closed; closed || la.fd < 0 {
		a.lendMu.Unlock()
		return closed // (read under the lock: Close sets it, on another goroutine)
	}
	a.lent, a.to = la, p
	a.lendMu.Unlock()
	if !p.ev.Post(handover{acc: la}) {
		la.giveBack()
	}
	<-la.back
	a.lendMu.Lock()
	defer a.lendMu.Unlock()
	a.lent, a.to = nil, nil
	return a.closed
}

// recall has the loop drop the listener lent to it, if any, and waits until it has
// (rawListener.Close, before the descriptors close).
func (a *acceptor) recall() {
	a.lendMu.Lock()
	a.closed = true
	la, p := a.lent, a.to
	a.lendMu.Unlock()
	if la == nil {
		return
	}
	la.closing.Store(true)
	if !p.ev.Post(handover{acc: la}) {
		la.giveBack()
	}
	<-la.back
}

// giveBack ends the loan: the accept goroutine goes on (once).
func (la *loopAcceptor) giveBack() { la.once.Do(func() { close(la.back) }) }

// acceptorHanded takes a lent listener into the loop's set, or drops it (Close asked).
func (p *parker) acceptorHanded(la *loopAcceptor) {
	if la.closing.Load() || !p.open() {
		p.dropAcceptor(la)
		return
	}
	if la.on {
		return
	}
	if err := p.ev.Add(la.fd, syscall.EPOLLIN); err != nil {
		p.log.Warn("cannot poll a listener on the client loop; its goroutine accepts", zap.Error(err))
		la.giveBack()
		return
	}
	la.on = true
	p.acceptors = append(p.acceptors, la)
}

// dropAcceptor takes la out of the loop's set and gives it back.
func (p *parker) dropAcceptor(la *loopAcceptor) {
	if la.on {
		la.on = false
		p.ev.Del(la.fd)
		for i, x := range p.acceptors {
			if x == la {
				p.acceptors = append(p.acceptors[:i], p.acceptors[i+1:]...)
				break
			}
		}
	}
	la.giveBack()
}

// dropAcceptors gives back every listener lent to the loop (it ends).
func (p *parker) dropAcceptors() {
	for len(p.acceptors) > 0 {
		p.dropAcceptor(p.acceptors[0])
	}
}

// acceptorOf is the lent listener whose descriptor fd is, if any.
func (p *parker) acceptorOf(fd int32) *loopAcceptor {
	for _, la := range p.acceptors {
		if la.fd == fd {
			return la
		}
	}
	return nil
}

// acceptOn accepts a client waiting on la (its descriptor was reported readable) and
// starts its login, as the accept goroutine would (Server.accept): one client an event,
// the set reporting the listener again while more wait.
func (p *parker) acceptOn(la *loopAcceptor) {
	s := la.s
	if la.closing.Load() {
		p.dropAcceptor(la)
		return
	}
	r, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(la.fd), 0, 0,
		syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
	switch errno {
	case 0:
	case syscall.EAGAIN, syscall.EINTR, syscall.ECONNABORTED:
		return
	default:
		p.dropAcceptor(la) // the goroutine meets the error itself, and backs off
		return
	}
	fd := int(r)
	if la.ln.tcp {
		noDelay(fd)
	}
	loopAccepts.Add(1)
	if !s.loginsOnLoop() {
		// A reload changed where logins run: this client is served as the goroutine
		// serves them, and the goroutine accepts the next.
		p.dropAcceptor(la)
		nc, err := accepted(int32(fd))
		if err != nil {
			_ = syscall.Close(fd)
			return
		}
		if s.admit() {
			go s.serveConn(nc)
		} else {
			_ = nc.Close()
		}
		return
	}
	if !s.admit() {
		_ = syscall.Close(fd)
		p.dropAcceptor(la)
		return
	}
	sess := s.newLoopLogin(fd)
	if sess.home() == p {
		p.loginHanded(sess)
		return
	}
	sess.home().postLogin(sess)
}
