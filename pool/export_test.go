package pool

import "time"

// SetTestHookIdleFailed sets (nil: clears) a function run when the reader of a connection
// that is not leased has found it broken, before it marks the connection gone.
func SetTestHookIdleFailed(f func(*Conn)) {
	if f == nil {
		testHookIdleFailed.Store(nil)
		return
	}
	testHookIdleFailed.Store(&f)
}

// SetPeekAfter sets how long a connection must sit idle before a lease peeks at its
// socket, and returns a function that restores the old value.
func SetPeekAfter(d time.Duration) func() {
	old := peekAfter
	peekAfter = d
	return func() { peekAfter = old }
}

// IdleBroken runs the lease's peek at c's socket as of now.
func (c *Conn) IdleBroken(now time.Time) bool { return c.idleBroken(now) }

// TrimIdle runs the maintenance pass over the idle list now.
func (p *Pool) TrimIdle() { p.trimIdle() }

// SetTestHookRemove sets (nil: clears) a function run when a connection's reader has
// exited, before the pool forgets the connection.
func SetTestHookRemove(f func(*Conn)) {
	if f == nil {
		testHookRemove.Store(nil)
		return
	}
	testHookRemove.Store(&f)
}

// SetTestHookLimitRefused sets (nil: clears) a function run when a shared limit has
// refused a pool a slot, before the pool queues the caller.
func SetTestHookLimitRefused(f func(*Pool)) {
	if f == nil {
		testHookLimitRefused.Store(nil)
		return
	}
	testHookLimitRefused.Store(&f)
}

// FollowersForTest counts the pools that follow cl (woken when a host comes up).
func (cl *Cluster) FollowersForTest() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.pools)
}
