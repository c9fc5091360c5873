package pool

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestWithdrawBetweenSteps: an Acquire goes round its loop again after a step of its wait
// ends without a connection: a queued waiter told to try again (here: the pool grew), a
// shared limit that refused and then freed a slot, Resume ending a hold. Until it queued
// or dialed again it was listed nowhere: Withdraw reported it not waiting, the cancel
// request was dropped, and the request went on to get a server and run. The test holds
// the Acquire in that window (testHookRetry) and withdraws it there: Withdraw finds it,
// its Acquire returns Withdraw's error, and nothing is dialed or leased for it.
func TestWithdrawBetweenSteps(t *testing.T) {
	for _, tc := range []struct {
		name string
		why  retry
		// setup makes the pool's state l's Acquire will wait in, and returns what ends
		// that step of its wait and how many connections the pool has opened by then.
		setup func(t *testing.T, p *Pool) (end func(), connects uint64)
		opts  func(o *Options)
	}{
		{"woken", retryWoken, func(t *testing.T, p *Pool) (func(), uint64) {
			held, err := p.AcquireTimeout(&skipLessee{name: "holder"}, time.Now(), 10*time.Second)
			require.NoError(t, err)
			t.Cleanup(func() { held.Release(false) })
			return func() {
				o := p.Options()
				o.Size = 2
				require.NoError(t, p.Reconfigure(o)) // room to dial: wakes the waiter
			}, 1
		}, func(o *Options) { o.Size = 1 }},
		{"limit", retryLimit, func(t *testing.T, p *Pool) (func(), uint64) {
			held, err := p.AcquireTimeout(&skipLessee{name: "holder"}, time.Now(), 10*time.Second)
			require.NoError(t, err)
			return func() { held.Discard(errors.New("test: frees the limit's slot")) }, 1
		}, func(o *Options) { o.Size = 2; o.Limits = []*Limit{NewLimit(1)} }},
		{"resumed", retryResumed, func(t *testing.T, p *Pool) (func(), uint64) {
			p.Hold()
			return p.Resume, 0
		}, func(o *Options) { o.Size = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := pgtest.Start(t)
			target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
			o := Options{Target: func() *Target { return target }}
			tc.opts(&o)
			p, err := New(o)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			end, connects := tc.setup(t, p)

			l := &skipLessee{name: "canceled"}
			errCanceled := errors.New("canceled")
			var once sync.Once
			withdrawn, held := false, false
			hook := func(q *Pool, why retry) {
				if q == p && why == tc.why {
					once.Do(func() { held, withdrawn = true, p.Withdraw(l, errCanceled) })
				}
			}
			testHookRetry.Store(&hook)
			t.Cleanup(func() { testHookRetry.Store(nil) })

			got := make(chan error, 1)
			var leased *Conn
			go func() {
				c, err := p.AcquireTimeout(l, time.Now(), 5*time.Second)
				leased = c
				if c != nil {
					c.Release(false)
				}
				got <- err
			}()
			require.Eventually(t, func() bool {
				s := p.Stats()
				if tc.why == retryResumed {
					p.mu.Lock()
					defer p.mu.Unlock()
					return len(p.aside) == 1
				}
				return s.Waiting == 1
			}, 10*time.Second, time.Millisecond, "the Acquire does not wait")
			end()
			acquireErr := acquireResult(t, got)
			require.True(t, held, "the Acquire did not go round its loop again")
			require.True(t, withdrawn, "Withdraw did not find the Acquire between two steps of its wait")
			require.ErrorIs(t, acquireErr, errCanceled)
			require.Nil(t, leased, "the withdrawn request got a server")
			require.Equal(t, connects, p.Stats().Connects, "a server was dialed for the withdrawn request")
			require.False(t, p.Withdraw(l, errCanceled), "withdrawn twice")
		})
	}
}
