package listenmux

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/pool"
)

// Pausing (the console's PAUSE and KILL). A paused listener has no connection, as a paused
// pool has no server: its connection is closed, and nothing connects it again (reconnect,
// Restore, a new subscriber's LISTEN) until Resume. Its subscriptions stay; Resume
// connects it and LISTENs on every channel again (connectedLocked), and the subscribers
// hear, as after any loss, that notifications may have been missed meanwhile.

// errPaused is what connecting a paused listener meets; a Subscribe retries it until
// Resume, as a query waits for a paused pool.
var errPaused = errors.New("the database is paused (PAUSE or KILL)")

// resumeWait bounds how long Resume waits for the connection and its LISTENs.
const resumeWait = 2 * time.Second

// Pause closes the listener's connection and keeps it closed until Resume. It returns the
// listener's pool (nil if it never connected), paused too, which the caller may wait on
// (pool.WaitPaused) until the connection is gone.
func (l *Listener) Pause() *pool.Pool {
	l.mu.Lock()
	l.paused = true
	p, c := l.pool, l.conn
	l.mu.Unlock()
	if p != nil {
		p.Pause()
	}
	if c != nil {
		// Leased for good, so the pool's Pause would close it only at a release that
		// never comes. Its reader sees the break; lost does not reconnect (paused).
		c.Discard(errPaused)
	}
	return p
}

// Resume ends a Pause: the listener connects again at once and LISTENs on every channel
// that has subscribers, and Resume returns once those LISTENs are answered, so that a
// notification committed after it is delivered; a database that cannot be reached is
// left to the reconnect loop. It waits resumeWait at most.
func (l *Listener) Resume() {
	l.mu.Lock()
	if !l.paused {
		l.mu.Unlock()
		return
	}
	l.paused = false
	if l.pool != nil {
		l.pool.Resume()
	}
	if l.closed || len(l.subs) == 0 || l.conn != nil {
		// A connection Pause closed whose loss its reader has not met yet: lost
		// reconnects.
		l.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), resumeWait)
	defer cancel()
	if err := l.connectLocked(ctx); err != nil {
		l.mu.Unlock()
		l.log.Warn("listener reconnect after RESUME failed; retrying", zap.Error(err))
		go l.reconnect()
		return
	}
	done := l.relistened
	l.mu.Unlock()
	if done != nil {
		waitAtMost(done, resumeWait)
	}
}
