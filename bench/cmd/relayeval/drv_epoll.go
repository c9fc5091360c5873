//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollDriver runs N event loops, each an epoll instance over raw non-blocking sockets,
// with no goroutine and no net.Conn per connection. A client stays on the loop that
// accepted it (round robin); a server is handled by the loop of the client it is linked
// to, so one link's two sockets are always served by one loop without locks. Sockets are
// registered once, edge-triggered, for input and output: per wakeup a socket gets at most
// one read (another only if the read filled the buffer) and one write per direction.
//
// Server pool: per-loop idle lists and FIFOs under one mutex (Pool, migrate on). A
// server moves to another loop only through its owner: a release that hands it to
// another loop's waiter (the loop holds more than its share, or has no waiter of its
// own) unregisters it and posts it to that loop's inbox; a lease that finds no idle
// server at home asks the loop holding an idle one to give it the same way. The inbox is
// a mutex-guarded slice and an eventfd in the loop's epoll set.
type epollDriver struct {
	cfg   *relay
	loops []*eLoop
	pool  *Pool[*eConn, *eConn]
	conns []atomic.Pointer[eConn] // by fd: a loop looks up the connection of an event
	lnfd  int
	raw   bool   // epoll-raw: socket reads and writes without the runtime's syscall bookkeeping
	next  int    // round robin for accepted clients (loop 0 only)
	ids   uint32 // client numbers (loop 0 only)
}

const (
	readChunk = 64 << 10
	highWater = 256 << 10 // a peer's pending output above which a socket is not read
	connFlags = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// eConn is a client or server socket. owner says which loop handles its events; every
// other field belongs to that loop.
type eConn struct {
	fd     int
	owner  atomic.Int32
	server bool
	in     []byte // a partial message, or (a waiting client) the request not yet forwarded
	out    []byte // bytes the socket has not taken yet
	peer   *eConn // the linked client or server
	st     link   // client: its protocol state
	id     uint32
	ready  bool // client: greeted
	wait   bool // client: waiting for a server (FIFO or in flight between loops)
	more   bool // the socket may hold unread bytes (edge-triggered)
	closed bool
	broken bool // server: unusable, close when it reaches its owner
	quit   bool // client: close once out is written (and the server released)
	werr   bool // a write failed: drop further output, the read side closes it
}

type itemKind int

const (
	itemLink itemKind = iota // server c arrives for waiter w
	itemGive                 // idle server c, homed here, goes to waiter w's loop
	itemAdd                  // a new server socket c
)

type inboxItem struct {
	kind itemKind
	c, w *eConn
	to   int
}

type eLoop struct {
	d       *epollDriver
	idx     int
	epfd    int
	evfd    int
	events  []unix.EpollEvent
	scratch []byte
	tmp     []byte
	again   []*eConn
	park    syscall.RawConn // epoll-park: the epoll descriptor in Go's netpoller
	mu      sync.Mutex
	inbox   []inboxItem
	spare   []inboxItem
}

// read and write a non-blocking socket. With raw they skip entersyscall/exitsyscall
// (RawSyscall): they never block, and a loopback write that runs the receiver's TCP
// stack inline can otherwise last long enough for sysmon to take the loop's P away.
func (d *epollDriver) read(fd int, b []byte) (int, error) {
	if !d.raw {
		return unix.Read(fd, b)
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func (d *epollDriver) write(fd int, b []byte) (int, error) {
	if !d.raw {
		return unix.Write(fd, b)
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func newEpollDriver(r *relay, loops int, park, raw bool) (*epollDriver, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, err
	}
	n := min(lim.Cur, 1<<20)
	d := &epollDriver{cfg: r, conns: make([]atomic.Pointer[eConn], n), raw: raw}
	d.pool = NewPool[*eConn, *eConn](loops, r.poolSize, true)
	for i := 0; i < loops; i++ {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, err
		}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
			return nil, err
		}
		l := &eLoop{d: d, idx: i, epfd: epfd, evfd: evfd,
			events: make([]unix.EpollEvent, 256), scratch: make([]byte, readChunk)}
		if park {
			if err := unix.SetNonblock(epfd, true); err != nil {
				return nil, err
			}
			if l.park, err = os.NewFile(uintptr(epfd), "epoll").SyscallConn(); err != nil {
				return nil, err
			}
		}
		d.loops = append(d.loops, l)
	}
	return d, nil
}

// rawFD duplicates the socket of c as a non-blocking descriptor and closes c.
func rawFD(c io.Closer) (int, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.Dup(int(f)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (d *epollDriver) start(ctx context.Context, ln net.Listener, servers []net.Conn) error {
	fd, err := rawFD(ln)
	if err != nil {
		return err
	}
	d.lnfd = fd
	if err := unix.EpollCtl(d.loops[0].epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		return err
	}
	for i, c := range servers {
		sfd, err := rawFD(c)
		if err != nil {
			return err
		}
		l := d.loops[i%len(d.loops)]
		s := l.register(sfd, true)
		d.pool.Add(l.idx, s)
	}
	for _, l := range d.loops {
		go l.run(ctx)
	}
	go func() {
		<-ctx.Done()
		unix.Close(d.lnfd)
	}()
	return nil
}

// register makes fd a connection of loop l.
func (l *eLoop) register(fd int, server bool) *eConn {
	c := &eConn{fd: fd, server: server}
	c.owner.Store(int32(l.idx))
	l.d.conns[fd].Store(c)
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connFlags, Fd: int32(fd)}); err != nil {
		log.Printf("epoll add: %v", err)
	}
	return c
}

// wait returns the loop's next events. By default it blocks in epoll_wait on the loop's
// thread; with park (driver "epoll-park") the loop's epoll descriptor sits in Go's own
// netpoller and the goroutine parks there when nothing is ready, so no thread blocks in
// a system call (the runtime's sysmon then has no P to take back from a blocked thread).
func (l *eLoop) wait() (int, error) {
	if l.park == nil {
		timeout := -1
		if len(l.again) > 0 {
			timeout = 0
		}
		return unix.EpollWait(l.epfd, l.events, timeout)
	}
	var n int
	var werr error
	err := l.park.Read(func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), l.events, 0)
		return n > 0 || werr != nil || len(l.again) > 0
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

func (l *eLoop) run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := l.wait()
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			log.Printf("epoll_wait: %v", err)
			return
		}
		for i := 0; i < n; i++ {
			ev := l.events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.evfd:
				l.drainInbox()
				continue
			case l.idx == 0 && fd == l.d.lnfd:
				l.accept()
				continue
			}
			c := l.d.conns[fd].Load()
			if c == nil || c.owner.Load() != int32(l.idx) || c.closed {
				continue // a stale event: closed, or moved to another loop
			}
			if ev.Events&unix.EPOLLOUT != 0 && len(c.out) > 0 {
				l.flush(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.more = true
				l.readable(c)
			}
		}
		if len(l.again) > 0 {
			again := l.again
			l.again = nil
			for _, c := range again {
				if c.more && !c.closed && c.owner.Load() == int32(l.idx) {
					l.readable(c)
				}
			}
			if l.again == nil {
				l.again = again[:0]
			}
		}
	}
}

func (l *eLoop) accept() {
	d := l.d
	for {
		fd, _, err := unix.Accept4(d.lnfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				log.Printf("accept: %v", err)
			}
			return
		}
		if fd >= len(d.conns) {
			unix.Close(fd)
			continue
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		d.ids++
		t := d.loops[d.next%len(d.loops)]
		d.next++
		c := &eConn{fd: fd, id: d.ids}
		c.owner.Store(int32(t.idx))
		d.conns[fd].Store(c)
		if err := unix.EpollCtl(t.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connFlags, Fd: int32(fd)}); err != nil {
			d.conns[fd].Store(nil)
			unix.Close(fd)
		}
	}
}

// post queues an item for loop l and wakes it.
func (l *eLoop) post(it inboxItem) {
	l.mu.Lock()
	wake := len(l.inbox) == 0
	l.inbox = append(l.inbox, it)
	l.mu.Unlock()
	if wake {
		var one = [8]byte{1}
		_, _ = unix.Write(l.evfd, one[:])
	}
}

func (l *eLoop) drainInbox() {
	var b [8]byte
	_, _ = unix.Read(l.evfd, b[:])
	l.mu.Lock()
	items := l.inbox
	l.inbox = l.spare[:0]
	l.mu.Unlock()
	for _, it := range items {
		switch it.kind {
		case itemAdd:
			s := l.register(it.c.fd, true)
			if w, to, ok := l.d.pool.Add(l.idx, s); ok {
				l.handTo(s, w, to)
			}
		case itemGive:
			s := it.c
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
			s.owner.Store(int32(it.to))
			l.d.loops[it.to].post(inboxItem{kind: itemLink, c: s, w: it.w})
		case itemLink:
			s := it.c
			s.owner.Store(int32(l.idx))
			if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &unix.EpollEvent{Events: connFlags, Fd: int32(s.fd)}); err != nil {
				s.broken = true
			}
			l.link(s, it.w)
		}
	}
	clear(items)
	l.spare = items[:0]
}

// handTo gives server s (idle, owned by l) to waiter w of loop to.
func (l *eLoop) handTo(s, w *eConn, to int) {
	if to == l.idx {
		l.link(s, w)
		return
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	s.owner.Store(int32(to))
	l.d.loops[to].post(inboxItem{kind: itemLink, c: s, w: w})
}

// link gives server s (owned by l) to client w (of l) that waits for it, and forwards the
// request w holds.
func (l *eLoop) link(s, w *eConn) {
	if s.broken {
		l.closeServer(s)
		if !w.closed {
			l.lease(w)
		}
		return
	}
	if w.closed {
		l.release(s)
		return
	}
	w.wait = false
	s.peer, w.peer = w, s
	if len(w.in) > 0 {
		l.clientData(w, w.in)
	}
	if w.more {
		l.again = append(l.again, w)
	}
}

// lease asks the pool for a server for client c: linked at once, or c waits.
func (l *eLoop) lease(c *eConn) bool {
	s, from, ok := l.d.pool.Lease(l.idx, c)
	c.wait = true
	switch {
	case !ok:
		return false
	case from != l.idx:
		l.d.loops[from].post(inboxItem{kind: itemGive, c: s, w: c, to: l.idx})
		return false
	}
	l.link(s, c)
	return !c.wait
}

// release returns server s (owned by l, unlinked) to the pool.
func (l *eLoop) release(s *eConn) {
	if w, to, ok := l.d.pool.Release(l.idx, s); ok {
		l.handTo(s, w, to)
	}
}

func (l *eLoop) readable(c *eConn) {
	if c.server {
		l.serverReadable(c)
	} else {
		l.clientReadable(c)
	}
}

// readInto reads once from c into its partial message or the loop's scratch buffer; it
// returns the bytes to look at, or nil when nothing came (the socket is drained) or the
// connection ended (eof).
func (l *eLoop) readInto(c *eConn) (data []byte, eof bool) {
	buf, pre := l.scratch, 0
	if len(c.in) > 0 {
		if cap(c.in)-len(c.in) < 4096 {
			nb := make([]byte, len(c.in), max(2*cap(c.in), 8192))
			copy(nb, c.in)
			c.in = nb
		}
		buf, pre = c.in[:cap(c.in)], len(c.in)
	}
	n, err := l.d.read(c.fd, buf[pre:])
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			c.more = errors.Is(err, unix.EINTR)
			return nil, false
		}
		return nil, true
	}
	if n == 0 {
		return nil, true
	}
	c.more = pre+n == len(buf)
	if c.more {
		l.again = append(l.again, c)
	}
	return buf[:pre+n], false
}

// keep stores rest (the unforwarded tail of data) as c's partial input, growing room to
// need bytes.
func keep(c *eConn, rest []byte, need int) {
	c.in = append(c.in[:0], rest...)
	if need > cap(c.in) {
		nb := make([]byte, len(c.in), need)
		copy(nb, c.in)
		c.in = nb
	}
}

func (l *eLoop) clientReadable(c *eConn) {
	if c.wait || c.quit || (c.peer != nil && len(c.peer.out) >= highWater) {
		return // c.more stays set: read again once linked or drained
	}
	data, eof := l.readInto(c)
	if eof {
		l.closeClient(c)
		return
	}
	if data != nil {
		l.clientData(c, data)
	}
}

// clientData handles bytes from client c: its startup, then requests.
func (l *eLoop) clientData(c *eConn, data []byte) {
	if !c.ready {
		used, out, ready, quit := l.d.cfg.greet.handshake(data, c.id, l.tmp[:0])
		l.tmp = out[:0]
		if len(out) > 0 {
			l.send(c, out)
		}
		if quit {
			c.quit = true
			if len(c.out) == 0 {
				l.closeClient(c)
			}
			return
		}
		data = data[used:]
		c.ready = ready
		if !ready {
			keep(c, data, 0)
			return
		}
	}
	if c.peer == nil {
		t, whole := firstMessage(data)
		if !whole || c.wait {
			keep(c, data, 0)
			return
		}
		if t == 'X' {
			l.closeClient(c)
			return
		}
		keep(c, data, 0)
		l.lease(c) // forwards c.in once linked
		return
	}
	fwd, term, need, err := c.st.scanClient(data)
	if err != nil {
		l.send(c, errorResponse(err.Error()))
		l.closeClient(c)
		return
	}
	if fwd > 0 {
		l.send(c.peer, data[:fwd])
	}
	if term {
		if c.st.owed > 0 { // answer the request first: closed at its release
			c.quit = true
			return
		}
		l.closeClient(c)
		return
	}
	keep(c, data[fwd:], need)
}

// firstMessage reports the type of the first message in b and whether it is whole.
func firstMessage(b []byte) (byte, bool) {
	if len(b) < 5 {
		return 0, false
	}
	n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	return b[0], len(b) >= n+1
}

func (l *eLoop) serverReadable(s *eConn) {
	cl := s.peer
	if cl == nil {
		data, eof := l.readInto(s)
		if eof || data != nil { // idle servers have nothing to say
			l.serverBroken(s)
		}
		return
	}
	if len(cl.out) >= highWater {
		return // read once the client has taken its output
	}
	data, eof := l.readInto(s)
	if eof {
		l.serverBroken(s)
		return
	}
	if data == nil {
		return
	}
	fwd, release, need, err := cl.st.scanServer(data)
	if err != nil || (release && fwd != len(data)) {
		l.serverBroken(s)
		return
	}
	if fwd > 0 {
		l.send(cl, data[:fwd])
	}
	if !release {
		keep(s, data[fwd:], need)
		return
	}
	s.in = s.in[:0]
	s.peer, cl.peer = nil, nil
	l.release(s)
	if cl.quit && len(cl.out) == 0 {
		l.closeClient(cl)
	}
}

// send writes b to c, keeping what the socket does not take for EPOLLOUT.
func (l *eLoop) send(c *eConn, b []byte) {
	if c.closed || c.werr {
		return
	}
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	n, err := l.d.write(c.fd, b)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			c.werr = true
			return
		}
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out, b[n:]...)
	}
}

// flush writes c's pending output (on EPOLLOUT) and lets a peer held back by it read.
func (l *eLoop) flush(c *eConn) {
	n, err := l.d.write(c.fd, c.out)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			c.werr = true
			c.out = c.out[:0]
		}
		return
	}
	c.out = append(c.out[:0], c.out[n:]...)
	if len(c.out) == 0 && cap(c.out) > readChunk {
		c.out = nil
	}
	if c.quit && len(c.out) == 0 {
		l.closeClient(c)
		return
	}
	if p := c.peer; p != nil && p.more && len(c.out) < highWater {
		l.again = append(l.again, p)
	}
}

func (l *eLoop) closeFD(c *eConn) {
	c.closed = true
	l.d.conns[c.fd].Store(nil)
	unix.Close(c.fd)
}

// closeClient closes client c; a server it holds mid-request is closed too (its state
// is unknown) and replaced.
func (l *eLoop) closeClient(c *eConn) {
	if c.closed {
		return
	}
	if c.wait {
		l.d.pool.Cancel(l.idx, c) // false: a server is on its way; link releases it
	}
	if s := c.peer; s != nil {
		c.peer, s.peer = nil, nil
		l.closeServer(s)
	}
	l.closeFD(c)
}

// serverBroken handles a server that ended or misbehaved: its client is closed; an idle
// one leaves the pool (one on its way to another loop is closed there).
func (l *eLoop) serverBroken(s *eConn) {
	if s.broken || s.closed {
		return
	}
	s.broken = true
	if cl := s.peer; cl != nil {
		s.peer, cl.peer = nil, nil
		l.closeServer(s)
		l.closeClient(cl)
		return
	}
	if l.d.pool.DropIdle(l.idx, s) {
		l.closeFD(s)
		l.refill()
	}
}

// closeServer closes a leased (or in-flight) server and dials a replacement.
func (l *eLoop) closeServer(s *eConn) {
	l.closeFD(s)
	l.d.pool.Drop(l.idx)
	l.refill()
}

func (l *eLoop) refill() {
	go l.d.cfg.refill(func(c net.Conn) {
		fd, err := rawFD(c)
		if err != nil {
			log.Printf("refill: %v", err)
			return
		}
		l.post(inboxItem{kind: itemAdd, c: &eConn{fd: fd}})
	})
}
