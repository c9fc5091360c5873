package pool

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestAbandon: a queued lessee taken out of the queue gets ErrAbandoned at once, leaves
// the queue (the pool no longer counts it waiting), and the connection freed later goes
// to the lessee queued behind it; a lessee not queued is not found.
func TestAbandon(t *testing.T) {
	p := sizeOnePool(t)

	held, err := p.AcquireTimeout(&skipLessee{}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	gone, next := &skipLessee{name: "gone"}, &skipLessee{name: "next"}
	goneErr := acquireAsync(p, gone)
	require.Eventually(t, func() bool { return p.Stats().Waiting == 1 }, 10*time.Second, 5*time.Millisecond)
	nextGot := make(chan *Conn, 1)
	go func() {
		c, _ := p.AcquireTimeout(next, time.Now(), 30*time.Second)
		nextGot <- c
	}()
	require.Eventually(t, func() bool { return p.Stats().Waiting == 2 }, 10*time.Second, 5*time.Millisecond)

	require.True(t, p.Abandon(gone))
	require.ErrorIs(t, <-goneErr, ErrAbandoned)
	require.Equal(t, 1, p.Stats().Waiting)
	require.False(t, p.Abandon(gone), "abandoned twice")
	require.False(t, p.Abandon(&skipLessee{name: "other"}), "a lessee that never queued")

	held.Release(false)
	c := <-nextGot
	require.Same(t, held, c, "the freed connection went to the lessee queued behind")
	c.Release(false)
}

// TestWithdrawHeld: a lessee whose Acquire waits for the end of a hold (PAUSE) is taken
// out of that wait by Withdraw, whose error its Acquire returns at once, while the pool
// is still held; Abandon reaches it too. After Resume the pool leases as before.
func TestWithdrawHeld(t *testing.T) {
	p := sizeOnePool(t)
	p.Pause()
	requireWithdrawn(t, p, "the Acquire still waits for Resume")

	p.Resume()
	c, err := p.AcquireTimeout(&skipLessee{name: "after"}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	c.Release(false)
	require.Equal(t, 1, p.Stats().Total)
}

// TestWithdrawLimit: with a shared limit of 1 (max_db_connections) taken by a lessee, a
// second one's Acquire has room in the pool (size 2) but waits for a slot of the limit.
// Withdraw and Abandon did not find it there: the Acquire waited on, and got the slot
// once freed. Now they end the wait at once; the limit's slot stays the holder's, and
// once it is released the pool leases its one connection again.
func TestWithdrawLimit(t *testing.T) {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	lim := NewLimit(1)
	p, err := New(Options{Size: 2, Target: func() *Target { return target }, Limits: []*Limit{lim}})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	held, err := p.AcquireTimeout(&skipLessee{name: "holder"}, time.Now(), 10*time.Second)
	require.NoError(t, err)

	requireWithdrawn(t, p, "the Acquire still waits for the shared limit")
	require.Zero(t, p.Stats().Waiting, "a withdrawn lessee is still queued")

	held.Release(false)
	c, err := p.AcquireTimeout(&skipLessee{name: "after"}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	require.Same(t, held, c)
	c.Release(false)
	require.Equal(t, 1, p.Stats().Total)
	require.Equal(t, 1, lim.Count())
}

// TestWithdrawDialing: a lessee whose Acquire waits for the connection the pool dials for
// it (to a server that accepts and answers nothing) is taken out of that wait by
// Withdraw, and Abandon: its Acquire returns at once, while the dial still runs. Each
// dial, ended later by the server, is counted as a failure and its slot given back:
// nothing is left dialing.
func TestWithdrawDialing(t *testing.T) {
	target, hangUp := silentServer(t)
	p, err := New(Options{Size: 2, Target: func() *Target { return target }, ConnectTimeout: time.Minute})
	require.NoError(t, err)
	t.Cleanup(p.Close)

	requireWithdrawn(t, p, "the Acquire still waits for its dial")
	require.Equal(t, 2, p.Stats().Login, "the withdrawn lessees' dials ended with them")

	hangUp()
	require.Eventually(t, func() bool { s := p.Stats(); return s.Total == 0 && s.Login == 0 },
		10*time.Second, 5*time.Millisecond, "a dial nobody waits for is still counted")
	require.Equal(t, uint64(2), p.Stats().ConnectFailures)
}

// TestWithdrawReserveDial: a queued lessee that has waited reserve_pool_timeout leaves
// the queue while the pool dials a reserve connection for it. Withdraw did not find it
// there (false), and the Acquire waited for the dial; now it returns Withdraw's error at
// once, is not queued again, and the reserve dial, ended later, frees its slot.
func TestWithdrawReserveDial(t *testing.T) {
	pg := pgtest.Start(t)
	pgTarget := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	silent, hangUp := silentServer(t)
	var dials atomic.Int32
	p, err := New(Options{Size: 1, ReserveSize: 1, ReserveTimeout: 50 * time.Millisecond, ConnectTimeout: time.Minute,
		Target: func() *Target {
			if dials.Add(1) == 1 {
				return pgTarget
			}
			return silent // the reserve connection's dial
		}})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	held, err := p.AcquireTimeout(&skipLessee{name: "holder"}, time.Now(), 10*time.Second)
	require.NoError(t, err)

	l := &skipLessee{name: "reserve"}
	got := acquireAsync(p, l)
	require.Eventually(t, func() bool { s := p.Stats(); return s.ReserveUsed == 1 && s.Login == 1 },
		10*time.Second, 5*time.Millisecond, "no reserve dial")
	errCanceled := errors.New("canceled")
	require.True(t, p.Withdraw(l, errCanceled), "Withdraw did not find the lessee of a reserve dial")
	select {
	case err := <-got:
		require.ErrorIs(t, err, errCanceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the Acquire still waits for its reserve dial")
	}
	require.Zero(t, p.Stats().Waiting, "the withdrawn lessee queued again")

	hangUp()
	require.Eventually(t, func() bool { s := p.Stats(); return s.Total == 1 && s.Login == 0 },
		10*time.Second, 5*time.Millisecond, "the reserve dial is still counted")
	held.Release(false)
	c, err := p.AcquireTimeout(&skipLessee{name: "after"}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	require.Same(t, held, c)
	c.Release(false)
}

// silentServer listens on loopback, accepts connections and answers nothing: a dial to
// its target waits for the login's answer until hangUp closes what was accepted, and
// whatever is accepted after (the dial then fails), or the test ends.
func silentServer(t *testing.T) (target *Target, hangUp func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var accepted []net.Conn
	hungUp := false
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if hungUp {
				nc.Close()
			} else {
				accepted = append(accepted, nc)
			}
			mu.Unlock()
		}
	}()
	hangUp = func() {
		mu.Lock()
		defer mu.Unlock()
		hungUp = true
		for _, nc := range accepted {
			nc.Close()
		}
		accepted = nil
	}
	t.Cleanup(func() { ln.Close(); hangUp() })
	return &Target{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Database: "db", User: "u"}, hangUp
}

// requireWithdrawn has one lessee Acquire from p, in the background, and takes it out
// of its wait with Withdraw, then another with Abandon: each Acquire must return the
// error given at once (stuck says what a failure means), and neither is found twice.
func requireWithdrawn(t *testing.T, p *Pool, stuck string) {
	t.Helper()
	errCanceled := errors.New("canceled")
	for _, tc := range []struct {
		name     string
		withdraw func(l Lessee) bool
		want     error
	}{
		{"Withdraw", func(l Lessee) bool { return p.Withdraw(l, errCanceled) }, errCanceled},
		{"Abandon", p.Abandon, ErrAbandoned},
	} {
		l := &skipLessee{name: tc.name}
		got := acquireAsync(p, l)
		require.Eventually(t, func() bool { return tc.withdraw(l) }, 10*time.Second, 5*time.Millisecond, tc.name)
		select {
		case err := <-got:
			require.ErrorIs(t, err, tc.want, tc.name)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: %s", tc.name, stuck)
		}
		require.False(t, tc.withdraw(l), "%s: withdrawn twice", tc.name)
	}
}

// acquireAsync acquires for l in the background, gives back what it got, and sends the
// Acquire's error.
func acquireAsync(p *Pool, l Lessee) <-chan error {
	got := make(chan error, 1)
	go func() {
		c, err := p.AcquireTimeout(l, time.Now(), 30*time.Second)
		if c != nil {
			c.Release(false)
		}
		got <- err
	}()
	return got
}

// acquireResult is the outcome of an acquireAsync, which must end within 10 s.
func acquireResult(t *testing.T, got <-chan error) error {
	t.Helper()
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the Acquire did not end")
		return nil
	}
}

// sizeOnePool is a pool of size 1 for the app user, closed at cleanup.
func sizeOnePool(t *testing.T) *Pool {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	p, err := New(Options{Size: 1, Target: func() *Target { return target }})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// TestWithdrawDialCounted: a lessee whose dial the pool counts (SHOW POOLS' sv_login,
// Stats.Login) is found by Withdraw from that moment, before the dial takes its slots of
// the shared limits. Between the two the lessee was listed nowhere: Withdraw reported it
// not waiting, the cancel request was dropped, and the canceled request got its server
// and ran. Here the limit's lock, held by the test, keeps the dial in that gap.
func TestWithdrawDialCounted(t *testing.T) {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	lim := NewLimit(5)
	p, err := New(Options{Size: 2, Limits: []*Limit{lim}, Target: func() *Target { return target }})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	lim.mu.Lock()
	unlock := sync.OnceFunc(lim.mu.Unlock)
	t.Cleanup(unlock)

	l := &skipLessee{name: "dialing"}
	got := acquireAsync(p, l)
	require.Eventually(t, func() bool { return p.Stats().Login == 1 }, 10*time.Second, time.Millisecond, "no dial")
	errCanceled := errors.New("canceled")
	withdrawn := p.Withdraw(l, errCanceled)
	unlock()
	acquireErr := acquireResult(t, got)
	require.True(t, withdrawn, "Withdraw did not find a lessee whose dial the pool counts")
	require.ErrorIs(t, acquireErr, errCanceled)
	require.Eventually(t, func() bool { s := p.Stats(); return s.Idle == 1 && s.Total == 1 && s.Login == 0 },
		10*time.Second, 5*time.Millisecond, "the withdrawn lessee's connection is not idle in the pool")
	require.Equal(t, 1, lim.Count())
}

// TestWithdrawLimitRefused: a lessee whose dial a shared limit has just refused, not yet
// queued for the limit's next slot, is found by Withdraw: its Acquire returns at once,
// not after waiting for its timeout (query_wait_timeout) and then running the canceled
// request.
func TestWithdrawLimitRefused(t *testing.T) {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	lim := NewLimit(1)
	newPool := func() *Pool {
		p, err := New(Options{Size: 2, Limits: []*Limit{lim}, Target: func() *Target { return target }})
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	a, b := newPool(), newPool()
	held, err := a.AcquireTimeout(&skipLessee{name: "holder"}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { held.Release(false) })

	l := &skipLessee{name: "refused"}
	errCanceled := errors.New("canceled")
	var once sync.Once
	withdrawn := false
	hook := func(p *Pool) {
		if p == b {
			once.Do(func() { withdrawn = b.Withdraw(l, errCanceled) })
		}
	}
	testHookLimitRefused.Store(&hook)
	t.Cleanup(func() { testHookLimitRefused.Store(nil) })
	start := time.Now()
	c, err := b.AcquireTimeout(l, start, 3*time.Second)
	if c != nil {
		c.Release(false)
	}
	require.True(t, withdrawn, "Withdraw did not find the lessee the limit had just refused")
	require.ErrorIs(t, err, errCanceled)
	require.Less(t, time.Since(start), 2*time.Second, "the withdrawn Acquire waited for its timeout")
	s := b.Stats()
	require.Zero(t, s.Total+s.Waiting+s.Login, "the withdrawn lessee left something counted: %+v", s)
	require.Equal(t, 1, lim.Count())
}
