package pool_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

// handed is a Handoff that reports what the pool handed a queued wait.
type handed struct {
	l  *lessee
	ch chan handOutcome
}

type handOutcome struct {
	c   *pool.Conn
	err error
}

func newHanded() *handed { return &handed{l: newLessee(), ch: make(chan handOutcome, 1)} }

func (h *handed) Handed(c *pool.Conn, err error) { h.ch <- handOutcome{c, err} }

func (h *handed) outcome(t *testing.T) handOutcome {
	t.Helper()
	select {
	case o := <-h.ch:
		return o
	case <-time.After(wait):
		t.Fatalf("nothing handed within %v", wait)
		return handOutcome{}
	}
}

// TestAcquireOrQueueDialsAhead: a loop's request at a pool with room to dial queues, and
// the pool dials for its queue (as many connections as it has room for, no more); each
// connection goes to the queue's head, and every request is served in turn.
func TestAcquireOrQueueDialsAhead(t *testing.T) {
	t.Parallel()
	p := newPool(t, pool.Options{Size: 2})
	hs := make([]*handed, 5)
	for i := range hs {
		hs[i] = newHanded()
		c, queued := p.AcquireOrQueue(hs[i].l, hs[i], time.Now(), wait)
		require.Nil(t, c)
		require.True(t, queued, "request %d queued", i)
	}
	s := p.Stats()
	require.Equal(t, 2, s.Total, "dials counted: the pool's size")
	require.Equal(t, 5, s.Waiting)
	for i, h := range hs {
		o := h.outcome(t)
		require.NoError(t, o.err, "request %d", i)
		require.NotNil(t, o.c, "request %d", i)
		require.True(t, p.TakeHanded(o.c, h.l))
		require.Equal(t, "1", h.l.queryOne(t, o.c, "SELECT 1"))
		o.c.Release(false)
	}
	// The second dial may end after the first connection served every request: it goes
	// idle then.
	eventually(t, func() bool { s := p.Stats(); return s.Connects == 2 && s.Idle == 2 && s.Waiting == 0 },
		"the two dials did not end idle: %+v", p.Stats())
	require.Equal(t, 2, p.Stats().Total, "no more connections than the pool's size")
}

// TestAcquireOrQueueDialAheadFails: the dial made for a queue fails (nothing listens):
// its slot is given back and the queue's head is told to acquire the ordinary way
// (ErrRetry), which meets the failure itself; nothing is left counted.
func TestAcquireOrQueueDialAheadFails(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	p := newPool(t, pool.Options{Size: 2, Target: func() *pool.Target {
		return &pool.Target{Host: "127.0.0.1", Port: port, Database: pgtest.AppDB, User: pgtest.AppUser}
	}})
	h := newHanded()
	c, queued := p.AcquireOrQueue(h.l, h, time.Now(), wait)
	require.Nil(t, c)
	require.True(t, queued)
	o := h.outcome(t)
	require.Nil(t, o.c)
	require.True(t, errors.Is(o.err, pool.ErrRetry), "handed %v", o.err)
	eventually(t, func() bool { s := p.Stats(); return s.Total == 0 && s.Login == 0 && s.Waiting == 0 },
		"the failed dial left counts: %+v", p.Stats())
	require.Equal(t, uint64(1), p.Stats().ConnectFailures)
}

// TestAcquireOrQueueDialAheadFailsBackingOff: with server_login_retry the failed dial
// leaves no room to dial (the pool backs off), and the queue's head is told the dial's
// failure itself, as a request that dials for itself is, instead of waiting out its
// query_wait_timeout.
func TestAcquireOrQueueDialAheadFailsBackingOff(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	p := newPool(t, pool.Options{Size: 2, LoginRetry: time.Minute, Target: func() *pool.Target {
		return &pool.Target{Host: "127.0.0.1", Port: port, Database: pgtest.AppDB, User: pgtest.AppUser}
	}})
	h := newHanded()
	c, queued := p.AcquireOrQueue(h.l, h, time.Now(), time.Minute)
	require.Nil(t, c)
	require.True(t, queued)
	o := h.outcome(t)
	require.Nil(t, o.c)
	require.Error(t, o.err)
	require.False(t, errors.Is(o.err, pool.ErrRetry), "handed %v", o.err)
	require.ErrorContains(t, o.err, "connection refused")
	eventually(t, func() bool { s := p.Stats(); return s.Total == 0 && s.Login == 0 && s.Waiting == 0 },
		"the failed dial left counts: %+v", p.Stats())
}

// TestAcquireOrQueueDialAheadUnderCap: a shared cap (max_db_connections) that refuses the
// dial leaves the request queued with nothing counted; when another pool under the cap
// releases its connection, that idle connection is closed to make room and the request
// is told to acquire the ordinary way.
func TestAcquireOrQueueDialAheadUnderCap(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	lim := pool.NewLimit(1)
	target := func() *pool.Target { return appTarget(pg) }
	p1 := newPool(t, pool.Options{Size: 2, Target: target, Limits: []*pool.Limit{lim}})
	p2 := newPool(t, pool.Options{Size: 2, Target: target, Limits: []*pool.Limit{lim}})
	held, _ := acquire(t, p1)
	h := newHanded()
	c, queued := p2.AcquireOrQueue(h.l, h, time.Now(), wait)
	require.Nil(t, c)
	require.True(t, queued)
	s := p2.Stats()
	require.Equal(t, 0, s.Total, "a refused dial is not counted")
	require.Equal(t, 1, s.Waiting)
	require.Equal(t, 1, lim.Count())
	held.Release(false)
	o := h.outcome(t)
	require.Nil(t, o.c)
	require.True(t, errors.Is(o.err, pool.ErrRetry), "handed %v", o.err)
	eventually(t, func() bool { return lim.Count() == 0 }, "p1's idle connection was not closed for p2")
}
