package pool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestAbandon: a queued lessee taken out of the queue gets ErrAbandoned at once, leaves
// the queue (the pool no longer counts it waiting), and the connection freed later goes
// to the lessee queued behind it; a lessee not queued is not found.
func TestAbandon(t *testing.T) {
	pg := pgtest.Start(t)
	target := &Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	p, err := New(Options{Size: 1, Target: func() *Target { return target }})
	require.NoError(t, err)
	t.Cleanup(p.Close)

	held, err := p.AcquireTimeout(&skipLessee{}, time.Now(), 10*time.Second)
	require.NoError(t, err)
	gone, next := &skipLessee{name: "gone"}, &skipLessee{name: "next"}
	goneErr := make(chan error, 1)
	go func() {
		c, err := p.AcquireTimeout(gone, time.Now(), 30*time.Second)
		if c != nil {
			c.Release(false)
		}
		goneErr <- err
	}()
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
