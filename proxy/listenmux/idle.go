package listenmux

import "errors"

// errDropped is why DropIdle closes a listener connection.
var errDropped = errors.New("no client listens: closed for a statement that needs the database to itself")

// DropIdle closes the listener's connection when no client listens through it, nor is
// about to, and no command or fence on it awaits its answer: its session would make
// PostgreSQL refuse DROP DATABASE and the like (55006). The next LISTEN connects again.
// It reports whether it closed one.
func (l *Listener) DropIdle() bool {
	l.mu.Lock()
	c := l.conn
	if c == nil || len(l.subs) > 0 || len(l.waiting) > 0 || l.fenceCur != nil || l.fenceNext != nil {
		l.mu.Unlock()
		return false
	}
	for _, n := range l.pending {
		if n > 0 {
			l.mu.Unlock()
			return false
		}
	}
	l.conn = nil // its reader's lost finds another connection (none): no reconnect, no gap
	l.mu.Unlock()
	c.Discard(errDropped)
	return true
}
