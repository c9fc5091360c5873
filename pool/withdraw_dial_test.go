package pool_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

// TestWithdrawnDialEndsInPool: the connection dialed for a lessee that Withdraw took out
// of its wait for the dial is the pool's once logged in, whatever happened meanwhile: it
// goes idle, or to the next waiter; it is closed when the pool was closed, paused
// (PAUSE) or marked by RECONNECT; a failed dial gives its slots back. The pool's counts
// (Stats: SHOW POOLS) and the shared limit's end as they would without the lessee.
func TestWithdrawnDialEndsInPool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int
		// then runs after the withdrawal, while the dial is held, and lets the dial end
		// (login: the login goes on; fail: the dial fails); it checks the outcome.
		then func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, fail func())
	}{
		{"idle", 2, func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, _ func()) {
			login()
			eventually(t, func() bool { s := p.Stats(); return s.Idle == 1 && s.Total == 1 && s.Login == 0 },
				"the connection did not go idle: %+v", p.Stats())
			c, _ := acquire(t, p)
			c.Release(false)
			require.Equal(t, uint64(1), p.Stats().Connects, "the next client did not get the idle connection")
			require.Equal(t, 1, lim.Count())
		}},
		{"next waiter", 1, func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, _ func()) {
			got := make(chan error, 1)
			go func() {
				c, err := p.AcquireTimeout(newLessee(), time.Now(), wait)
				if c != nil {
					c.Release(false)
				}
				got <- err
			}()
			eventually(t, func() bool { return p.Stats().Waiting == 1 }, "the next client did not queue")
			login()
			select {
			case err := <-got:
				require.NoError(t, err)
			case <-time.After(wait):
				t.Fatal("the queued client did not get the withdrawn lessee's connection")
			}
			s := p.Stats()
			require.Equal(t, uint64(1), s.Connects)
			require.Equal(t, 1, s.Total)
			require.Zero(t, s.Waiting)
			require.Equal(t, 1, lim.Count())
		}},
		{"closed", 2, func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, _ func()) {
			p.Close()
			login()
			eventually(t, p.Ended, "the closed pool kept the connection: %+v", p.Stats())
			require.Equal(t, uint64(1), p.Stats().Connects)
			require.Zero(t, lim.Count())
		}},
		{"paused", 2, func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, _ func()) {
			p.Pause()
			login()
			require.NoError(t, p.WaitPaused(ctxFor(t, wait)))
			s := p.Stats()
			require.Equal(t, uint64(1), s.Connects)
			require.Zero(t, s.Total+s.Connected+s.Login, "%+v", s)
			require.Zero(t, lim.Count())
		}},
		{"reconnect", 2, func(t *testing.T, p *pool.Pool, lim *pool.Limit, login, _ func()) {
			p.Reconnect()
			login()
			eventually(t, func() bool { s := p.Stats(); return s.Connects == 1 && s.Total+s.Connected+s.Login == 0 },
				"the connection dialed across RECONNECT was kept: %+v", p.Stats())
			require.Zero(t, p.Stale())
			require.Zero(t, lim.Count())
		}},
		{"dial fails", 2, func(t *testing.T, p *pool.Pool, lim *pool.Limit, _, fail func()) {
			fail()
			eventually(t, func() bool { s := p.Stats(); return s.ConnectFailures == 1 && s.Total+s.Login == 0 },
				"the failed dial is still counted: %+v", p.Stats())
			require.Zero(t, lim.Count())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := pgtest.Start(t)
			port, accepted, proceed, stop := holdFirstDial(t, pg, true)
			lim := pool.NewLimit(5)
			p := newPool(t, pool.Options{Size: tc.size, Limits: []*pool.Limit{lim}, ConnectTimeout: wait,
				Target: relayTarget(pg, port)})
			t.Cleanup(stop) // before the pool's Close

			l := newLessee()
			got := make(chan error, 1)
			go func() {
				c, err := p.AcquireTimeout(l, time.Now(), wait)
				if c != nil {
					c.Release(false)
				}
				got <- err
			}()
			select {
			case <-accepted:
			case <-time.After(wait):
				t.Fatal("no dial")
			}
			errCanceled := errors.New("canceled")
			eventually(t, func() bool { return p.Withdraw(l, errCanceled) }, "Withdraw did not find the dialing lessee")
			select {
			case err := <-got:
				require.ErrorIs(t, err, errCanceled)
			case <-time.After(wait):
				t.Fatal("the withdrawn Acquire still waits for its dial")
			}
			s := p.Stats()
			require.Equal(t, 1, s.Total)
			require.Equal(t, 1, s.Login)
			require.Equal(t, 1, lim.Count())
			tc.then(t, p, lim, func() { close(proceed) }, stop)
		})
	}
}
