package pool

import (
	"errors"
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
			t.Fatalf("%s: the Acquire still waits for Resume", tc.name)
		}
		require.False(t, tc.withdraw(l), "%s: withdrawn twice", tc.name)
	}

	p.Resume()
	c, err := p.AcquireTimeout(&skipLessee{name: "after"}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	c.Release(false)
	require.Equal(t, 1, p.Stats().Total)
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

// sizeOnePool is a pool of size 1 for the app user, closed at cleanup.
func sizeOnePool(t *testing.T) *Pool {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	p, err := New(Options{Size: 1, Target: func() *Target { return target }})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}
