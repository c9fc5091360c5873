//go:build linux

package evloop

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a Handler that reports what it is told on channels and checks that it is
// never told two things at once.
type recorder struct {
	t      *testing.T
	inside atomic.Int32
	events chan int32
	posted chan int
	ticks  atomic.Int32
	onTick func()
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, events: make(chan int32, 64), posted: make(chan int, 1024)}
}

func (r *recorder) enter() {
	if r.inside.Add(1) != 1 {
		r.t.Error("the handler was called while it ran")
	}
}

func (r *recorder) Event(fd int32, events uint32) {
	r.enter()
	defer r.inside.Add(-1)
	if events&syscall.EPOLLIN != 0 {
		var b [64]byte
		_, _ = syscall.Read(int(fd), b[:]) // drain what the test wrote (edge-triggered)
	}
	r.events <- fd
}

func (r *recorder) Posted(v int) {
	r.enter()
	defer r.inside.Add(-1)
	r.posted <- v
}

func (r *recorder) Tick() {
	r.enter()
	defer r.inside.Add(-1)
	r.ticks.Add(1)
	if r.onTick != nil {
		r.onTick()
	}
}

// run starts l's loop with h; the returned function ends it and returns Run's result.
func run(t *testing.T, l *Loop[int], h Handler[int], period time.Duration) func() error {
	done := make(chan struct{})
	res := make(chan error, 1)
	go func() { res <- l.Run(h, period, done) }()
	var once sync.Once
	stop := func() error {
		var err error
		once.Do(func() {
			close(done)
			_ = l.Post(-1) // wake it, so it sees done now and not at its next tick
			select {
			case err = <-res:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after done")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// pipe returns a non-blocking pipe's ends, closed at the test's end.
func pipe(t *testing.T) (r, w int) {
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC))
	t.Cleanup(func() { _ = syscall.Close(p[0]); _ = syscall.Close(p[1]) })
	return p[0], p[1]
}

func TestEventsReachTheHandler(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := newRecorder(t)
	run(t, l, h, time.Second)
	r, w := pipe(t)
	require.NoError(t, l.Add(int32(r), syscall.EPOLLIN|ET))
	for i := 0; i < 3; i++ {
		time.Sleep(20 * time.Millisecond) // the loop waits in the runtime's poller meanwhile
		_, err := syscall.Write(w, []byte("x"))
		require.NoError(t, err)
		select {
		case fd := <-h.events:
			require.EqualValues(t, r, fd)
		case <-time.After(2 * time.Second):
			t.Fatalf("write %d: no event", i)
		}
	}
	// Taken out of the set, the descriptor is not reported again.
	l.Del(int32(r))
	_, err = syscall.Write(w, []byte("y"))
	require.NoError(t, err)
	select {
	case fd := <-h.events:
		t.Fatalf("event for %d after Del", fd)
	case <-time.After(100 * time.Millisecond):
	}
	// Register puts it back, and reports what is ready already (the byte above).
	require.NoError(t, l.Register(int32(r), syscall.EPOLLIN|ET))
	select {
	case fd := <-h.events:
		require.EqualValues(t, r, fd)
	case <-time.After(2 * time.Second):
		t.Fatal("no event for what was ready when registered again")
	}
}

func TestPostWakesTheLoopInOrder(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := newRecorder(t)
	run(t, l, h, time.Hour) // no tick wakes it: only the eventfd does
	// Several goroutines post while the loop waits and while it runs; each one's items
	// arrive in its order, and all of them arrive.
	const posters, each = 4, 200
	var wg sync.WaitGroup
	for g := 0; g < posters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				assert.True(t, l.Post(g*each+i))
				if i%50 == 0 {
					time.Sleep(5 * time.Millisecond) // let the loop go back to waiting
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, posters)
	for n := 0; n < posters*each; n++ {
		select {
		case v := <-h.posted:
			g, i := v/each, v%each
			require.Equal(t, next[g], i, "poster %d's items out of order", g)
			next[g]++
		case <-time.After(2 * time.Second):
			t.Fatalf("%d of %d posted items arrived", n, posters*each)
		}
	}
}

func TestTicksWhileIdle(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := newRecorder(t)
	run(t, l, h, 30*time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for h.ticks.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.GreaterOrEqual(t, h.ticks.Load(), int32(4), "an idle loop ticks every period")
}

func TestEndServesWhatWasPosted(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := newRecorder(t)
	// The loop is held in a tick while items are posted and done is closed: it ends with
	// them delivered, and refuses what comes after.
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	h.onTick = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	stop := run(t, l, h, 10*time.Millisecond)
	<-entered
	for i := 0; i < 5; i++ {
		require.True(t, l.Post(i))
	}
	require.True(t, l.Open())
	go func() {
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	require.NoError(t, stop())
	require.False(t, l.Open())
	require.False(t, l.Post(99), "a post after the end is refused")
	var got []int
	for len(h.posted) > 0 {
		if v := <-h.posted; v >= 0 {
			got = append(got, v)
		}
	}
	require.Equal(t, []int{0, 1, 2, 3, 4}, got)
}

// clockRecorder records, for each item posted to it, the loop's clock reading.
type clockRecorder struct {
	l   *Loop[int]
	now chan time.Time
}

func (c *clockRecorder) Event(int32, uint32) {}
func (c *clockRecorder) Tick()               {}
func (c *clockRecorder) Posted(v int) {
	if v >= 0 {
		c.now <- c.l.Now()
	}
}

// TestNowIsTheWakeUp: what a loop serves sees the time of the wake-up that brought it
// (Now), read after the loop woke and before the item was served; a later wake-up reads
// the clock again.
func TestNowIsTheWakeUp(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := &clockRecorder{l: l, now: make(chan time.Time, 4)}
	stop := run(t, l, h, time.Hour)
	defer func() { require.NoError(t, stop()) }()
	var seen []time.Time
	for i := range 2 {
		time.Sleep(50 * time.Millisecond) // the loop waits: the post wakes it
		before := time.Now()
		require.True(t, l.Post(i))
		select {
		case at := <-h.now:
			require.False(t, at.Before(before), "the reading is from after the post woke the loop")
			require.False(t, at.After(time.Now()), "and from before the item was served")
			seen = append(seen, at)
		case <-time.After(5 * time.Second):
			t.Fatal("the posted item was not served")
		}
	}
	require.True(t, seen[1].After(seen[0]), "each wake-up reads the clock")
}

// closer ends its loop from inside: serving item 1, it closes done and posts 2 to wake
// the loop, as a shutdown does from outside at the worst moment (the wake-up served in
// the iteration that is running).
type closer struct {
	l    *Loop[int]
	done chan struct{}
}

func (c *closer) Event(int32, uint32) {}
func (c *closer) Tick()               {}
func (c *closer) Posted(v int) {
	if v == 1 {
		close(c.done)
		c.l.Post(2)
	}
}

// TestDoneSeenBeforeWaiting: a loop whose done closes while it serves (the Post meant to
// wake it served in the same iteration) returns, and does not sleep until its next tick.
func TestDoneSeenBeforeWaiting(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	h := &closer{l: l, done: make(chan struct{})}
	res := make(chan error, 1)
	go func() { res <- l.Run(h, time.Hour, h.done) }()
	require.True(t, l.Post(1))
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after done")
	}
}

// TestRegisterTriesTheLikelyOpFirst: Register makes one epoll_ctl where the loop knows
// whether the descriptor is in the set (ADD after Del or for a new one, MOD for one in
// it), and still registers one whose bit is stale (closed without Del, its number reused).
func TestRegisterTriesTheLikelyOpFirst(t *testing.T) {
	var ops []int
	var mu sync.Mutex
	t.Cleanup(SeeCtl(func(op int) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}))
	l, err := New[int]()
	require.NoError(t, err)
	h := newRecorder(t)
	run(t, l, h, time.Second)
	took := func() []int {
		mu.Lock()
		defer mu.Unlock()
		got := ops
		ops = nil
		return got
	}
	event := func(w int, fd int32, what string) {
		t.Helper()
		_, err := syscall.Write(w, []byte("x"))
		require.NoError(t, err)
		select {
		case got := <-h.events:
			require.EqualValues(t, fd, got, what)
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no event", what)
		}
	}
	r, w := pipe(t)
	fd := int32(r)
	require.NoError(t, l.Register(fd, syscall.EPOLLIN|ET))
	require.Equal(t, []int{syscall.EPOLL_CTL_ADD}, took(), "a new descriptor")
	event(w, fd, "added")
	require.NoError(t, l.Register(fd, syscall.EPOLLIN|ET))
	require.Equal(t, []int{syscall.EPOLL_CTL_MOD}, took(), "one in the set")
	l.Del(fd)
	require.NoError(t, l.Register(fd, syscall.EPOLLIN|syscall.EPOLLONESHOT))
	require.Equal(t, []int{syscall.EPOLL_CTL_DEL, syscall.EPOLL_CTL_ADD}, took(), "taken out, then back")
	event(w, fd, "back in the set")

	// Closed without Del (the kernel drops it from the set), its number reused: the
	// stale bit costs a failed MOD, and the ADD after it registers the new descriptor.
	require.NoError(t, syscall.Close(r))
	require.NoError(t, syscall.Close(w))
	var p [2]int
	require.NoError(t, syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC))
	t.Cleanup(func() { _ = syscall.Close(p[0]); _ = syscall.Close(p[1]) })
	require.EqualValues(t, fd, p[0], "the lowest free numbers: the read end's again")
	require.NoError(t, l.Register(fd, syscall.EPOLLIN|ET))
	require.Equal(t, []int{syscall.EPOLL_CTL_MOD, syscall.EPOLL_CTL_ADD}, took(), "a stale bit")
	event(p[1], fd, "the reused number")
}

// TestRegistrationAllocatesNothing: Add, Register and Del take the event on the stack (a
// version whose test seam took the event's pointer made each an allocation).
func TestRegistrationAllocatesNothing(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	r, _ := pipe(t)
	fd := int32(r)
	allocs := testing.AllocsPerRun(100, func() {
		_ = l.Add(fd, syscall.EPOLLIN|ET)
		_ = l.Register(fd, syscall.EPOLLIN|syscall.EPOLLONESHOT)
		l.Del(fd)
		_ = l.Register(fd, syscall.EPOLLIN|ET)
		l.Del(fd)
	})
	require.Zero(t, allocs)
}

// rester is a Handler whose events rest (Rest) and may run a step while served.
type rester struct {
	*recorder
	l      *Loop[int]
	rest   bool
	during func(fd int32)
}

func (r *rester) Event(fd int32, events uint32) {
	if r.rest {
		r.l.Rest()
	}
	if r.during != nil {
		r.during(fd)
	}
	r.recorder.Event(fd, events)
}

// A wake-up whose every event rested waits without looking for more first: one take of
// the set's events per wake-up, where a wake-up that did not rest takes twice (the look
// after serving finds nothing). Run with and without resting.
func TestRestedWakeUpsSkipTheLook(t *testing.T) {
	takes := func(rest bool) int {
		var n atomic.Int32
		tookSeen = func() { n.Add(1) }
		defer func() { tookSeen = nil }()
		l, err := New[int]()
		require.NoError(t, err)
		h := &rester{recorder: newRecorder(t), l: l, rest: rest}
		stop := run(t, l, h, time.Minute)
		r, w := pipe(t)
		require.NoError(t, l.Add(int32(r), syscall.EPOLLIN|ET))
		time.Sleep(20 * time.Millisecond)
		start := n.Load()
		for i := range 10 {
			_, err := syscall.Write(w, []byte("x"))
			require.NoError(t, err)
			select {
			case <-h.events:
			case <-time.After(2 * time.Second):
				t.Fatalf("write %d: no event", i)
			}
			time.Sleep(10 * time.Millisecond) // the loop waits in the runtime's poller meanwhile
		}
		got := int(n.Load() - start)
		require.NoError(t, stop())
		return got
	}
	require.LessOrEqual(t, takes(true), 11, "takes for 10 rested wake-ups")
	require.GreaterOrEqual(t, takes(false), 19, "takes for 10 wake-ups that did not rest")
}

// A rested wake-up waits without looking, so what came while it was served must still
// wake the loop, also when the runtime's poller saw the set's edge meanwhile (here while
// the handler sleeps, which lets the scheduler poll): the second descriptor's event
// arrives at once, not at the next tick (a minute away).
func TestRestedWakeUpMissesNothing(t *testing.T) {
	l, err := New[int]()
	require.NoError(t, err)
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	h := &rester{recorder: newRecorder(t), l: l, rest: true}
	h.during = func(fd int32) {
		if fd == int32(r1) {
			_, _ = syscall.Write(w2, []byte("y"))
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(t, l, h, time.Minute)
	require.NoError(t, l.Add(int32(r1), syscall.EPOLLIN|ET))
	require.NoError(t, l.Add(int32(r2), syscall.EPOLLIN|ET))
	for i := range 5 {
		time.Sleep(10 * time.Millisecond)
		_, err := syscall.Write(w1, []byte("x"))
		require.NoError(t, err)
		for _, want := range []int{r1, r2} {
			select {
			case fd := <-h.events:
				require.EqualValues(t, want, fd, "round %d", i)
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: no event for %d", i, want)
			}
		}
	}
}
