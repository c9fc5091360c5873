package proxy

import (
	"encoding/binary"
	"time"
)

// SetTestHookWaitBegins sets (nil: clears) a function run as a client's request begins to
// wait for a server, before it asks the pool, with the client's database and a function
// that has the server take a cancel request for the client (as one read from a client's
// CancelRequest is taken).
func SetTestHookWaitBegins(f func(db string, cancel func())) {
	if f == nil {
		testHookWaitBegins.Store(nil)
		return
	}
	hook := func(s *Session) {
		f(s.dbName, func() { s.srv.cancel(s.cancelPID, binary.BigEndian.AppendUint32(nil, s.cancelKey)) })
	}
	testHookWaitBegins.Store(&hook)
}

// SetStandbyBusyWait sets how long a replica read waits for its standby's connection, and
// returns a function that restores the old value.
func SetStandbyBusyWait(d time.Duration) func() {
	old := standbyBusyWait
	standbyBusyWait = d
	return func() { standbyBusyWait = old }
}

// StandbyWaitingForTest counts the requests of db's clients waiting in its standbys' pools.
func StandbyWaitingForTest(s *Server, db string) int {
	n := 0
	for _, e := range s.pools.all() {
		if e.key.db == db {
			for _, p := range e.replicaPools() {
				n += p.Stats().Waiting
			}
		}
	}
	return n
}
