package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// killWith ends the client with pe (the first FATAL asked for wins, endWith) from any
// goroutine that does not hold s.wmu. The FATAL goes out only between whole messages, and
// after the whole messages already on their way: with the client's writer free it is
// written at once; a relay holding the writer in the middle of an answer ends the client
// itself at its next message boundary (ending). A relay that sends nothing for a while
// may be waiting on a server that does not answer (a stopped backend, a long query): that
// server is closed, so that its read fails between two messages and it tells the client
// (serverFailed). A relay that sends nothing for killWait (a client that does not read),
// or that has not reached a boundary in killMax, has its client closed untold.
// Many clients at once are ended with killAll, which waits for all of them together.
func (s *Session) killWith(pe *pgerr.Error) {
	start := time.Now()
	k := s.startKill(pe, start)
	killWait, killMax := killBounds()
	for {
		took, over := k.step(time.Now(), start, killWait, killMax)
		if took {
			k.tell()
			return
		}
		if over {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// killAll ends every session of ss as killWith ends one, fatal(sess) being its FATAL, and
// returns once all of them are ended, as PgBouncer closes a database's clients at once:
// every FATAL is recorded before any client is waited for, so that each relay ends its
// client at its own next boundary meanwhile, and one loop then waits for them all, with
// killWith's bounds counted from the same start. The whole takes about as long as the
// slowest client, not the sum of them (30 clients that do not read: 200 ms, not 6 s).
// A client whose writer is free is told on a goroutine of its own, at most killTellers
// at once, each waiting at most killTellWait for a full socket (PgBouncer tries its send
// once and closes). One whose writer is taken while every teller is busy keeps it taken
// until a teller is free: it is told all the same, not closed untold for the wait (with
// 64 full sockets ahead of it, it was), within killMax.
func killAll(ss []*Session, fatal func(*Session) *pgerr.Error) {
	if len(ss) == 0 {
		return
	}
	start := time.Now()
	killWait, killMax := killBounds()
	ks := make([]killing, len(ss))
	for i, s := range ss {
		ks[i] = s.startKill(fatal(s), start)
	}
	tellers := make(chan struct{}, killTellers)
	var told sync.WaitGroup
	defer told.Wait()
	for {
		now, n := time.Now(), 0
		for i := range ks {
			k := &ks[i]
			took, over := k.step(now, start, killWait, killMax)
			if took {
				select {
				case tellers <- struct{}{}:
					told.Add(1)
					go func(k killing) {
						defer told.Done()
						k.tellWithin(killTellWait)
						<-tellers
					}(*k)
					continue
				default:
					k.taken = true // told once a teller is free
				}
			}
			if !over {
				ks[n] = *k
				n++
			}
		}
		ks = ks[:n]
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// killTellers bounds the goroutines killAll tells clients on at once; killTellWait is how
// long each waits for a client's socket to take its FATAL. A socket with room takes it at
// once; a full one holds its teller that long and no longer, so that full sockets delay
// the others' FATALs by little (100 clients that do not read: two rounds of 50 ms).
const (
	killTellers  = 64
	killTellWait = 50 * time.Millisecond
)

// killing is the wait to end one client (killWith, killAll): the FATAL it is ended with
// and what has been seen of the relay holding its writer. It belongs to the goroutine
// that waits.
type killing struct {
	s         *Session
	pe        *pgerr.Error // the FATAL that won (endWith)
	last      uint64       // the bytes the client was sent (sentOut), when last looked at
	movedAt   time.Time    // when last changed
	discarded bool         // the relay's server was closed to wake it
	taken     bool         // s.wmu is held by the wait, for a teller to tell (killAll)
}

// startKill records pe as the FATAL s is to be ended with, unless one was already, and
// begins the wait for it at now.
func (s *Session) startKill(pe *pgerr.Error, now time.Time) killing {
	s.endWith.CompareAndSwap(nil, pe)
	return killing{s: s, pe: s.endWith.Load(), last: s.sentOut(), movedAt: now}
}

// step looks at the client once, the wait having begun at start. took: its writer was
// free and is held now, for tell (or was taken already, k.taken, and waits for a teller
// within killMax). over: the wait is over otherwise, the relay having told the client and
// closed it, or the client being closed untold past killWait or killMax (see killWith).
func (k *killing) step(now, start time.Time, killWait, killMax time.Duration) (took, over bool) {
	s := k.s
	if k.taken {
		if now.Sub(start) > killMax {
			k.taken = false
			s.closed.Store(true)
			s.closeAndWake()
			s.wmu.Unlock()
			return false, true
		}
		return true, false
	}
	if s.wmu.TryLock() {
		return true, false
	}
	if s.ended() {
		return false, true // the relay told the client and closed it
	}
	if out := s.sentOut(); out != k.last {
		k.last, k.movedAt = out, now // the relay moves on: a boundary comes soon
	}
	still := now.Sub(k.movedAt)
	if still > killWait || now.Sub(start) > killMax {
		s.closed.Store(true)
		s.closeAndWake()
		return false, true
	}
	if !k.discarded && still > killWait/4 {
		k.discarded = true
		if c := s.linkedServer(); c != nil {
			c.Discard(errors.New("its client was closed: " + k.pe.Message))
		}
	}
	return false, false
}

// tell ends the client whose writer step took: told even when another goroutine marked
// the client closed a moment ago, as that one may be about to tell (fatal) and must not
// find the socket closed first; a client that left has its socket closed already, and
// tell then writes nothing.
func (k *killing) tell() { k.tellWithin(time.Second) }

// tellWithin is tell waiting at most wait for the client's socket.
func (k *killing) tellWithin(wait time.Duration) {
	k.s.fatalWithin(k.pe, wait)
	k.s.wmu.Unlock()
}

// killBounds are killWith's bounds now: killWait, killMax.
func killBounds() (killWait, killMax time.Duration) {
	return time.Duration(killWaitNs.Load()), time.Duration(killMaxNs.Load())
}

// sentOut is how many bytes the client was sent since login (0 without working state).
func (s *Session) sentOut() uint64 {
	s.mu.Lock()
	w := s.sessionWork
	s.mu.Unlock()
	if w == nil {
		return 0
	}
	return w.ops.out.Load()
}

// ended reports whether the client's connection was closed, or its FATAL sent.
func (s *Session) ended() bool {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	return s.ncEnd != 0
}

// ending is the relay's look, between two server messages, for a FATAL the session is
// being ended with (killWith): it tells the client and closes it there, and closes c, the
// server in the middle of answering it. s.wmu is held.
func (s *Session) ending(c *pool.Conn) bool {
	pe := s.endWith.Load()
	if pe == nil {
		return false
	}
	if !s.closed.Load() {
		s.fatalLocked(pe)
	}
	c.Discard(errors.New("its client was closed: " + pe.Message))
	return true
}

// killWaitNs bounds how long killWith waits for a relay holding the client's writer that
// sends the client nothing meanwhile (200 ms); killMaxNs how long it waits for one that
// does (1 s).
// Atomic variables only so that a test of the boundary rule can give a client starved by a
// loaded machine the time a real one would take (SetKillWaitForTest).
var killWaitNs, killMaxNs atomic.Int64

func init() {
	killWaitNs.Store(int64(200 * time.Millisecond))
	killMaxNs.Store(int64(time.Second))
}
