package proxy

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
)

// The client loop reads server connections too (issue 14, the second stage): a server
// leased to a client whose answers the loop may relay is handed to the loop by its
// reader goroutine (pool.Conn.LoopPark, from Pump), which then ends, and stays the
// loop's across leases, with no goroutine of its own. The loop relays whole messages
// from the server's buffer with the same code as Pump (relayMsg); what it cannot do
// without blocking — an answer larger than it holds, a failed read, a lease to anything
// else — goes back to a reader goroutine that HandBack starts (KeepReader, HandBack;
// others ask through Recall), which goes on as always.
//
// There is a loop per core (newLoops), each with its share of the clients (Session.home,
// by id). A server is read by one loop at a time (pool.Conn.LoopOf): the loop of the
// client whose lease parked it there, and it stays there across leases, whichever loop's
// client leases it next. A loop relaying to another loop's client works beside that
// loop as Pump does beside a session goroutine (s.wmu, s.mu), so servers do not move.
// Moving a server to the loop of each new lessee (epoll_ctl out of one set, into the
// other, a post) was built and measured first: with two loops 59% of leases moved one
// (pgbench -S, 50 clients, pool 20), 3 epoll_ctl each, and it cost 27 → 31 µs per
// transaction; handing released servers to waiters of the same loop first left 45% moving
// (bench/README.md). Pools, limits, cancel keys and SHOW views stay global: only the
// reading of sockets is divided.

// loopMaxAnswer is how much of an unfinished server message the loop holds before it
// hands the answer to the reader goroutine, which streams it.
const loopMaxAnswer = 8 << 10

// LoopPumped marks Session as a lessee whose answers the client loop may relay.
func (s *Session) LoopPumped() {}

var _ pool.LoopLessee = (*Session)(nil)

// pumpsOnLoop reports whether the loop may relay c's answers to s: the client loop is
// on, and nothing of s's needs the reader goroutine (a listening client's notifications,
// a multi-host database's replica reads). It reads only atomics: it runs on the reader.
func (s *Session) pumpsOnLoop(c *pool.Conn) bool {
	cfg := s.srv.Config()
	return cfg != nil && cfg.ClientLoop && s.home() != nil && s.entry != nil && s.notes.Load() == nil &&
		!s.entry.multi.Load() && config.PoolMode(s.entry.modeNow.Load()) != config.PoolModeSession &&
		c.LoopFD() >= 0
}

// pumpOnLoop relays what c's server sent to s, on the loop: whole messages already
// buffered, then what one read brings, until the socket is drained (its descriptor is
// edge-triggered) or the lease ends. closing: the event said the server closed its side
// (EPOLLRDHUP, HUP, ERR). A read that does not fill the buffer then does not mean the
// socket is drained: its end may be behind the bytes read (a FATAL and the FIN after it,
// as PostgreSQL ends a backend), and no later edge would tell of it, so the loop reads on
// until the end, which goes to the reader goroutine (serverFailed). Stopping at the short
// read left a pinned client, told the FATAL, open on a dead server until its next request.
func (s *Session) pumpOnLoop(c *pool.Conn, closing bool, at time.Time, bufs *wire.BufStack) {
	rd := c.Rd
	for drained := false; ; {
		if !s.relayBatch(c, at) {
			return
		}
		if drained {
			return
		}
		more, err := rd.ReadNowWith(bufs)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil {
			c.KeepReader() // the reader meets the failure and tells the client
			return
		}
		drained = !more && !closing
		if more {
			c.KeepReader() // a long answer (it filled the buffer): the reader streams it
			return
		}
		if _, _, whole := rd.Whole(); !whole && rd.Buffered() >= loopMaxAnswer {
			c.KeepReader() // a long message: the reader streams it
			return
		}
	}
}

// relayBatch relays the whole messages buffered from c's server to s, holding s.wmu, and
// flushes them to the client; false once the loop is done with c for this lease (the
// link ended, c failed, or c went back to its reader).
func (s *Session) relayBatch(c *pool.Conn, at time.Time) bool {
	rd := c.Rd
	if _, _, whole := rd.Whole(); !whole {
		return true
	}
	if !s.wmu.TryLock() {
		c.KeepReader() // another writer has the client (a notification, a late Pump)
		return false
	}
	if s.srv.console.suspendedNow.Load() {
		s.unlockW()
		c.KeepReader() // SUSPEND: the reader goroutine holds the answer (holdAnswer)
		return false
	}
	s.pumps.Add(1)
	ok := true
	for {
		typ, n, whole := rd.Whole()
		if !whole {
			break
		}
		if runAnswer(typ) {
			took, err := s.relayRun(c)
			if err != nil {
				s.serverFailed(c, err)
				c.HandBack()
				ok = false
				break
			}
			if took > 0 {
				continue
			}
		}
		if _, _, err := rd.Next(); err != nil {
			c.KeepReader()
			ok = false
			break
		}
		if !s.leases(c) || s.ending(c) {
			c.HandBack() // the lease ended under it (a timer, a kill): the reader sees to c
			ok = false
			break
		}
		released, err := s.relayMsg(c, typ, n, at)
		if err != nil {
			c.HandBack()
			ok = false
			break
		}
		if released {
			ok = false
			break
		}
	}
	full := false
	if s.wr.Buffered() > 0 {
		switch err := s.wr.TryFlush(); {
		case err == syscall.EAGAIN:
			full = true
		case err != nil:
			s.clientWriteFailed()
		}
	}
	s.pumps.Add(-1)
	s.unlockW()
	if full {
		// The client's socket is full: its writes go to a goroutine that may wait for
		// it, so that one client that does not read cannot hold up the loop. While c is
		// still leased its reader goroutine sends the rest first (Pump, flushLeft); once
		// the link has ended, a goroutine of its own does. A client served from its bare
		// socket keeps it: this loop may not be the client's (a server stays on the loop
		// it was parked on), whose own loop may be reading it now, so its reader and
		// connection are not this loop's to change (toGoroutine); the goroutine's write
		// that must wait moves the socket to its net.Conn itself (loginConn.backed).
		if ok {
			c.KeepReader()
			return false
		}
		go s.flushLeft()
	}
	return ok
}

// runAnswer reports whether a server message of type typ only answers a request (its
// parse, bind, close, description, a row, its completion): relayRun's.
func runAnswer(typ byte) bool {
	switch typ {
	case '1', '2', '3', 'n', 't', 'T', 'D', 'C', 'I', 's':
		return true
	}
	return false
}

// relayRun relays, from the front of c's buffered answer, a run of whole messages that
// only answer requests (runAnswer), as relayMsg would one by one: each matched to its
// request (answer) in order, but under one hold of s.mu, and the ones the client sees
// as they are copied into its writer in one piece and counted once (relayRead). A transaction's
// answer is mostly such messages (five of six for an extended-protocol query), and the
// per-message lock, copy and count were a tenth of the relay's work for them. The run
// stops before anything else relayMsg looks at: a message of another type, one that
// does not fit the writer's room (it would flush), a Parse pgmux answers itself (fakes),
// a held replica request, LISTEN's bookkeeping, an end of the lease or of the session;
// relayBatch handles that one the ordinary way. A message answer hides or reads (a
// hidden request's, a row pgmux reads) ends the run too, handled here (afterAnswer). It
// returns how many messages it took (none: the first was not for a run); err is
// relayMsg's, for the caller to tell the client (serverFailed). s.wmu is held.
func (s *Session) relayRun(c *pool.Conn) (took int, err error) {
	if s.closed.Load() {
		return 0, nil // forward's skip of what a gone client would be sent
	}
	rd := c.Rd
	room := s.wr.Room()
	var run []byte
	s.mu.Lock()
	// Looked at once for the run: under s.mu no request is queued (no Fake), and what
	// other goroutines may change meanwhile (a kill, a lease ended by a timer) is seen by
	// relayBatch after the run as it would be had it come a moment later.
	if s.q.fakes.Load() > 0 || s.rr.Load() != nil || s.notes.Load() != nil ||
		s.endWith.Load() != nil || !s.leases(c) {
		s.mu.Unlock()
		return 0, nil
	}
	// plain: the head request takes DataRows as they are (link.Queue.PlainRow), which
	// leave it at the head: a result's rows are relayed without answer.
	plain := s.q.ring.PlainRow()
	for {
		typ, n, whole := rd.Whole()
		if !whole || !runAnswer(typ) || len(run)+wire.HeaderLen+n >= room ||
			rd.MaxMessage > 0 && n > rd.MaxMessage { // Next's refusal, relayBatch's to make
			break
		}
		if typ != 'D' || !plain {
			hide, row := s.answer(c, typ)
			if hide || row != 0 {
				s.mu.Unlock()
				s.relayRead(run, false)
				_, _, _ = rd.Next() // whole and within the limit: no error
				return took + 1, s.afterAnswer(rd, typ, n, hide, row)
			}
			plain = s.q.ring.PlainRow()
		}
		m := rd.Take(n)
		if len(run) > 0 && unsafe.SliceData(m) != unsafe.SliceData(run[len(run):]) {
			s.relayRead(run, false) // not next to the run in the buffer (not seen: Whole reads nothing)
			run = nil
		}
		if len(run) == 0 {
			run = m
		} else {
			run = run[:len(run)+len(m)]
		}
		took++
	}
	s.mu.Unlock()
	s.relayRead(run, false)
	return took, nil
}

// flushLeft sends what the loop left unsent in s.wr when the client's socket was full,
// waiting for the client (on a goroutine: Pump's or one of its own).
func (s *Session) flushLeft() {
	s.wmu.Lock()
	// (nil: someone else flushed it meanwhile, and the client parked without its writer)
	if s.wr != nil && s.wr.Buffered() > 0 {
		if err := s.wr.Flush(); err != nil {
			s.clientWriteFailed()
		}
	}
	s.unlockW()
}
