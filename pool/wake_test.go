package pool

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// skipLessee holds a connection and drops what its server sends. It has a size, so
// distinct ones compare unequal (pointers to zero-size values need not).
type skipLessee struct{ name string }

func (l *skipLessee) Pump(c *Conn) error {
	for {
		if c.Lessee() != Lessee(l) {
			return nil
		}
		_, n, err := c.Rd.Next()
		if err != nil {
			return err
		}
		if c.Lessee() == Lessee(l) {
			if err := c.Rd.Skip(n); err != nil {
				return err
			}
		}
	}
}

// TestClusterChangeWakesWaiters: clients that queued behind failed dials to a multi-host
// target (server_login_retry holds new dials back) try again as soon as a host comes
// back or changes role, all of them that the pool has room for, instead of one per
// retry interval or none until their wait limit.
func TestClusterChangeWakesWaiters(t *testing.T) {
	pg := pgtest.Start(t)
	cl := NewCluster(ClusterOptions{Endpoints: []Endpoint{{Host: pg.Host, Port: pg.Port}}})
	target := &Target{Cluster: cl, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	p, err := New(Options{Size: 3, LoginRetry: time.Hour, Target: func() *Target { return target }})
	require.NoError(t, err)
	t.Cleanup(p.Close)

	c, err := p.AcquireTimeout(&skipLessee{}, time.Now(), 10*time.Second) // the pool now follows cl
	require.NoError(t, err)
	c.Release(false)
	c.closeFor(errors.New("test: make the next clients dial"))
	require.Eventually(t, func() bool { return p.Stats().Total == 0 }, 10*time.Second, 10*time.Millisecond)

	// As after a failed dial: new connections are held back for an hour.
	cl.hosts[0].noteDown(errors.New("test: host down"))
	p.mu.Lock()
	p.lastFail = time.Now()
	p.mu.Unlock()
	got := make(chan error, 2)
	for range 2 {
		go func() {
			c, err := p.AcquireTimeout(&skipLessee{}, time.Now(), 30*time.Second)
			if err == nil {
				defer c.Release(false)
			}
			got <- err
		}()
	}
	require.Eventually(t, func() bool { return p.Stats().Waiting == 2 }, 10*time.Second, 10*time.Millisecond)

	start := time.Now()
	cl.hosts[0].noteRole(RolePrimary) // the host answers again
	for range 2 {
		select {
		case err := <-got:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("a queued client was not woken when its host came back")
		}
	}
	require.Less(t, time.Since(start), 5*time.Second)
}
