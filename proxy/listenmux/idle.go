package listenmux

import "errors"

// errDropped is why DropIdle closes a listener connection.
var errDropped = errors.New("no client listens: closed for a statement that needs the database to itself")

// DropIdle closes the listener's connection when no client listens through it, nor is
// about to: its session would make PostgreSQL refuse DROP DATABASE and the like (55006).
// What still awaits an answer on it (the last UNLISTEN, a fence) ends as at a loss; the
// next LISTEN connects again. It reports whether it closed one.
func (l *Listener) DropIdle() bool {
	l.mu.Lock()
	c := l.conn
	if c == nil || len(l.subs) > 0 {
		l.mu.Unlock()
		return false
	}
	for _, n := range l.pending {
		if n > 0 {
			l.mu.Unlock()
			return false
		}
	}
	l.conn = nil // its reader's lost finds no connection of its own: no reconnect, no gap
	l.failWaitingLocked(errDropped)
	l.mu.Unlock()
	c.Discard(errDropped)
	return true
}
