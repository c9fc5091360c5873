//go:build linux

package evloop

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// ET is EPOLLET as the uint32 an EpollEvent holds (syscall's constant is negative).
const ET = 1 << 31

// Handler is what a loop serves: each ready descriptor's events, each item posted to
// it (in order), and a tick about every period. All three run on the loop's goroutine,
// one at a time.
type Handler[T any] interface {
	Event(fd int32, events uint32)
	Posted(v T)
	Tick()
}

// Loop is one event loop: an epoll set, its eventfd and its inbox of T.
//
// It waits for the set to become readable in Go's netpoller (an epoll descriptor is
// readable while it holds events), then takes the events with a zero-timeout
// epoll_pwait; the set is changed with epoll_ctl. All of these are RawSyscalls: none of
// them blocks, and the runtime's blocking-syscall entry wakes its monitor thread (sysmon)
// when every P was idle, which then polls every 20 µs for a while: with a blocking
// epoll_pwait that was a wake-up per event, and a thread held by the loop. After serving
// what it took the loop looks again (another zero-timeout epoll_pwait) before it waits:
// what came meanwhile is taken without a trip through the runtime's poller (a wait that
// skipped this look cost more epoll_pwait calls and context switches per transaction:
// bench/README.md).
//
// Owners: mu guards inbox, spare, ended and evfd's closing; awake is atomic; the wait
// itself and now are the loop goroutine's (Run).
type Loop[T any] struct {
	epfd int
	mu   sync.Mutex
	// inbox is what was posted since the loop last drained it; spare is the slice it
	// drained last, kept so that posting allocates nothing once both have grown.
	inbox, spare []T
	// evfd, in the set, wakes the loop when awake says it may be waiting; -1 once ended.
	evfd  int
	awake atomic.Bool
	// ended is set when Run has returned: Post refuses from then on.
	ended bool
	// Unpoll takes a descriptor out of the set, as Del; made once, so that passing it
	// (pool.Conn.OnFD) allocates nothing.
	Unpoll func(fd uintptr)
	// now is when the loop last woke up (Now); the loop goroutine's alone.
	now time.Time
	// served counts the events and posted items of the wake-up being served and rests
	// those of them that rested (Rest); the loop goroutine's alone.
	served, rests int
	// inSet has bit fd set while descriptor fd is in the set as far as Add, Register and
	// Del know (atomic words: any goroutine registers). It only picks which epoll_ctl
	// Register tries first; a descriptor closed without Del leaves its bit set, and the
	// other operation, tried next, still registers it. Descriptors beyond it (see
	// hintFDs) take Register's old order, MOD then ADD.
	inSet []atomic.Uint64
}

// hintFDs bounds the descriptors inSet covers: the process's descriptor limit, at most
// 1<<20 (a 128 KB bitmap, of which only the words of descriptors in use are touched).
func hintFDs() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1 << 16
	}
	return int(min(lim.Cur, 1<<20))
}

// known reports whether the set holds fd as far as inSet knows, and whether inSet
// covers fd at all.
func (l *Loop[T]) known(fd int32) (in, covered bool) {
	if fd < 0 || int(fd)>>6 >= len(l.inSet) {
		return false, false
	}
	return l.inSet[fd>>6].Load()&(1<<(fd&63)) != 0, true
}

// mark records whether the set holds fd.
func (l *Loop[T]) mark(fd int32, in bool) {
	if fd < 0 || int(fd)>>6 >= len(l.inSet) {
		return
	}
	if in {
		l.inSet[fd>>6].Or(1 << (fd & 63))
	} else {
		l.inSet[fd>>6].And(^uint64(1 << (fd & 63)))
	}
}

// Now is the time the loop last woke up, read once per wake-up: what the events and
// posted items of that wake-up take as the current time (as PgBouncer's loop caches its
// clock per iteration). Only the loop's goroutine (the Handler's calls) may use it.
func (l *Loop[T]) Now() time.Time { return l.now }

// New makes a loop's epoll set and eventfd; Run serves it.
func New[T any]() (*Loop[T], error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil, err
	}
	l := &Loop[T]{epfd: epfd, evfd: -1, inSet: make([]atomic.Uint64, (hintFDs()+63)/64)}
	l.Unpoll = func(fd uintptr) { l.Del(int32(fd)) }
	fd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		_ = syscall.Close(epfd)
		return nil, e
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := ctl(epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		_ = syscall.Close(int(fd))
		_ = syscall.Close(epfd)
		return nil, err
	}
	l.evfd = int(fd)
	return l, nil
}

// Add puts fd in the set for events.
func (l *Loop[T]) Add(fd int32, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: fd}
	err := epollCtl(l.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	if err == nil {
		l.mark(fd, true)
	}
	return err
}

// Register (re)registers fd in the set for events, adding it when it is not there: a
// registration made again also queues an event for what is ready already. It tries
// first the operation that inSet says will do (ADD for a descriptor taken out of the set
// or never in it, as a parked client's is: the MOD tried first cost every park a failed
// system call), and the other when the kernel answers that fd is there (EEXIST) or is
// not (ENOENT).
func (l *Loop[T]) Register(fd int32, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: fd}
	first, second, retry := syscall.EPOLL_CTL_MOD, syscall.EPOLL_CTL_ADD, syscall.ENOENT
	if in, covered := l.known(fd); covered && !in {
		first, second, retry = syscall.EPOLL_CTL_ADD, syscall.EPOLL_CTL_MOD, syscall.EEXIST
	}
	err := epollCtl(l.epfd, first, int(fd), &ev)
	if err == retry {
		err = epollCtl(l.epfd, second, int(fd), &ev)
	}
	if err == nil {
		l.mark(fd, true)
	}
	return err
}

// Holds reports whether fd may be in the set: as far as Add, Register and Del know (a
// descriptor closed without Del still counts), and always for one beyond what they track.
func (l *Loop[T]) Holds(fd int32) bool {
	in, covered := l.known(fd)
	return in || !covered
}

// Del takes fd out of the set (nothing if it is not there).
func (l *Loop[T]) Del(fd int32) {
	l.mark(fd, false)
	_ = epollCtl(l.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
}

// Post queues v for the loop (Handler.Posted) and wakes it if it may be waiting; any
// goroutine. It reports false, queuing nothing, once the loop has ended: the caller then
// does what v asks itself.
func (l *Loop[T]) Post(v T) bool {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return false
	}
	l.inbox = append(l.inbox, v)
	if !l.awake.Load() && l.evfd >= 0 {
		one := uint64(1)
		_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.evfd), uintptr(unsafe.Pointer(&one)), 8)
	}
	l.mu.Unlock()
	return true
}

// Open reports whether the loop still runs.
func (l *Loop[T]) Open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.ended
}

// posted reports whether the inbox holds anything (the loop looks before it waits).
func (l *Loop[T]) posted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.inbox) > 0
}

// Run serves the loop until done is closed: h is told of every event and posted item, and
// ticks about every period (at the first wake-up past it). Then the loop ends (Post
// refuses), h is told what was posted until then, and the set is closed. It returns an
// error only when waiting failed (the loop has ended then too).
func (l *Loop[T]) Run(h Handler[T], period time.Duration, done <-chan struct{}) error {
	events := make([]syscall.EpollEvent, 128)
	f := os.NewFile(uintptr(l.epfd), "event loop")
	defer func() {
		l.end(h)
		_ = f.Close()
	}()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var armed, lastTick time.Time // the read deadline set (the next tick's time); the last tick
	ended := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	// serve takes the set's events and what was posted and tells h, once a wake-up. It
	// reports whether there was anything to take (false: the loop waits).
	var werr error
	serve := func(epfd int) bool {
		if tookSeen != nil {
			tookSeen()
		}
		n, err := waitNow(epfd, events)
		if n == 0 && (err == nil || err == syscall.EINTR) && !l.posted() {
			return false
		}
		l.awake.Store(true)
		if err != nil && err != syscall.EINTR {
			werr = err
			return true
		}
		if ended() {
			return true
		}
		now := time.Now()
		l.now = now
		if now.Sub(lastTick) >= period {
			lastTick = now
			h.Tick()
		}
		l.served, l.rests = 0, 0
		for i := range n {
			fd := events[i].Fd
			if int(fd) == l.evfd {
				var b [8]byte
				_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 8)
				continue
			}
			l.served++
			h.Event(fd, events[i].Events)
		}
		l.drain(h)
		return true
	}
	// wait serves wake-ups until one is to be followed by the look, and waits between them.
	wait := func(fd uintptr) bool {
		for {
			if !serve(int(fd)) {
				return false // nothing yet: wait in the runtime's poller
			}
			if werr != nil || ended() || l.rests < l.served || lastTick.Add(period) != armed {
				return true // the look (the next take) comes after Read's reset
			}
			// Every event and item of this wake-up rested (Rest): wait for the set's next
			// edge within this Read, without the look. Read's next call of wait takes what
			// came, even if the runtime's poller saw its edge while the loop served (the
			// reset at Read's start would forget that).
			l.awake.Store(false)
			if !l.posted() {
				return false
			}
		}
	}
	for {
		if next := lastTick.Add(period); next != armed {
			if err := f.SetReadDeadline(next); err != nil {
				return err
			}
			armed = next
		}
		if ended() {
			// Looked at before each wait too, not only after: a Post meant to wake the
			// loop for done (as the server's shutdown does) may have been served by the
			// iteration that just ended, and the loop would then sleep until its tick.
			return nil
		}
		l.awake.Store(false)
		err := rc.Read(wait)
		l.awake.Store(true)
		if ended() {
			return nil
		}
		if err == nil {
			err, werr = werr, nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				now := time.Now()
				l.now = now
				if now.Sub(lastTick) >= period {
					lastTick = now
					h.Tick()
				}
				continue
			}
			return err
		}
	}
}

// Rest tells the loop that the event or posted item being served waits for its peer's
// answer after a round trip (a login's, whose client computes its proof or reads what it
// was sent): when every event and item of a wake-up rested, the loop waits in the runtime's
// poller at once, without the zero-timeout epoll_pwait it otherwise makes first to take
// what came while it served (the look, which such a wake-up nearly never finds anything
// for: a system call per round trip). Only the Handler calls it, from Event or Posted.
func (l *Loop[T]) Rest() { l.rests++ }

// end marks the loop ended, closes its eventfd and serves what was posted until then.
func (l *Loop[T]) end(h Handler[T]) {
	l.mu.Lock()
	l.ended = true
	if l.evfd >= 0 {
		_ = syscall.Close(l.evfd)
		l.evfd = -1
	}
	l.mu.Unlock()
	l.drain(h)
}

// drain tells h of what was posted, in order, until the inbox is empty.
func (l *Loop[T]) drain(h Handler[T]) {
	var zero T
	for {
		l.mu.Lock()
		in := l.inbox
		l.inbox, l.spare = l.spare[:0], nil
		l.mu.Unlock()
		if len(in) == 0 {
			l.mu.Lock()
			if l.spare == nil {
				l.spare = in
			}
			l.mu.Unlock()
			return
		}
		for i := range in {
			v := in[i]
			in[i] = zero // the slice is kept: let go of what v holds
			l.served++
			h.Posted(v)
		}
		l.mu.Lock()
		if l.spare == nil {
			l.spare = in[:0]
		}
		l.mu.Unlock()
	}
}

// tookSeen, when a test sets it before Run, is told of each take of the set's events.
var tookSeen func()

// waitNow is epoll_pwait(2) with a zero timeout as a RawSyscall: the events ready now,
// none if there are none.
func waitNow(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// ctlSeen, when a test sets it (SeeCtl), is told each operation Add, Register and Del
// make. It takes the operation alone: handing the event's pointer through a function
// value would move every call's EpollEvent to the heap (an allocation per registration).
var ctlSeen atomic.Pointer[func(op int)]

// SeeCtl has f told of each epoll_ctl operation (syscall.EPOLL_CTL_ADD, _MOD, _DEL) that
// Add, Register and Del make, in every loop of the process, until the function it returns
// is called. For tests.
func SeeCtl(f func(op int)) (stop func()) {
	ctlSeen.Store(&f)
	return func() { ctlSeen.Store(nil) }
}

// epollCtl is the epoll_ctl that Add, Register and Del make.
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	if f := ctlSeen.Load(); f != nil {
		(*f)(op)
	}
	return ctl(epfd, op, fd, ev)
}

// ctl is epoll_ctl(2) as a RawSyscall (it never blocks).
func ctl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
