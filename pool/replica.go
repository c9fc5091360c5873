package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// What reads on standbys need from a Cluster: which standbys may serve them, the
// primary's WAL position after a client's commit, and a wait until a standby has
// replayed it (read-your-writes, proxy/replica.go).
//
// The primary's position is read by one fetcher per cluster that runs only while
// someone asks: every caller joins the next read, and a read is sent only after every
// caller in it has asked, so its answer is at or after each caller's commit (any read
// that starts after the commit completed covers it; one read serves many clients). It
// reads pg_current_wal_insert_lsn(), which is never behind the end of a commit record,
// even with synchronous_commit off.
//
// A standby's replayed position is polled by one poller per standby that runs only
// while someone waits on that standby, every replayPoll, on a connection of its own.

// replayPoll is how often a standby's poller asks for its replayed position while
// clients wait: a few milliseconds against a replay delay that is usually longer.
const replayPoll = 5 * time.Millisecond

// StandbyInfo is a standby fit for reads, for a caller choosing one.
type StandbyInfo struct {
	Host     *Host
	LagMs    int64  // replay lag at the last check
	Replayed uint64 // the highest replayed WAL position pgmux has seen
}

// Standbys returns the hosts that may serve reads: known standbys, reachable, with no
// broken connection since they last answered, and whose lag is known and at most maxLag
// (0: any lag). Order is the configuration's.
func (cl *Cluster) Standbys(maxLag time.Duration) []StandbyInfo {
	var out []StandbyInfo
	for _, h := range cl.hosts {
		h.mu.Lock()
		ok := h.role == RoleStandby && h.up && !h.down && !h.suspect && h.lagMs >= 0 &&
			(maxLag <= 0 || time.Duration(h.lagMs)*time.Millisecond <= maxLag)
		info := StandbyInfo{Host: h, LagMs: h.lagMs, Replayed: max(h.lsn, h.replayed)}
		h.mu.Unlock()
		if ok {
			out = append(out, info)
		}
	}
	return out
}

// NoteRead counts a read sent to h as a standby, for SHOW HOSTS.
func (h *Host) NoteRead() { h.reads.Add(1) }

// PrimaryLSNAfter returns the primary's WAL position as the hosts' checker last read it,
// if that check was sent after t (then it covers any commit completed before t).
func (cl *Cluster) PrimaryLSNAfter(t time.Time) (uint64, bool) {
	for _, h := range cl.hosts {
		h.mu.Lock()
		ok := h.role == RolePrimary && !h.down && h.lsn != 0 && h.lsnAsked.After(t)
		lsn := h.lsn
		h.mu.Unlock()
		if ok {
			return lsn, true
		}
	}
	return 0, false
}

// lsnFetch is one read of the primary's WAL position and the callers it serves.
//
// Owners: the first caller that finds none pending makes it under cl.lsnMu; the running
// fetcher (fetchLSN, one at a time) takes it off lsnNext under cl.lsnMu, writes lsn and
// err, and closes done; callers read lsn and err only after done is closed.
type lsnFetch struct {
	done chan struct{}
	lsn  uint64
	err  error
}

// PrimaryLSN returns the primary's WAL insert position, read after the call began (see
// above): at or after the end of any commit that completed before it.
func (cl *Cluster) PrimaryLSN(ctx context.Context) (uint64, error) {
	cl.lsnMu.Lock()
	if cl.lsnShut {
		cl.lsnMu.Unlock()
		return 0, ErrClosed
	}
	f := cl.lsnNext
	if f == nil {
		f = &lsnFetch{done: make(chan struct{})}
		cl.lsnNext = f
	}
	if !cl.lsnRunning {
		cl.lsnRunning = true
		cl.wg.Add(1)
		go cl.fetchLSN()
	}
	cl.lsnMu.Unlock()
	select {
	case <-f.done:
		return f.lsn, f.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// fetchLSN serves the queued reads one batch at a time and exits when none is queued.
func (cl *Cluster) fetchLSN() {
	defer cl.wg.Done()
	for {
		cl.lsnMu.Lock()
		f := cl.lsnNext
		cl.lsnNext = nil
		if f == nil {
			cl.lsnRunning = false
			cl.lsnMu.Unlock()
			return
		}
		cl.lsnMu.Unlock()
		f.lsn, f.err = cl.readPrimaryLSN()
		close(f.done)
	}
}

// readPrimaryLSN asks the primary on the fetcher's own connection, (re)connecting to the
// host now known as the primary.
func (cl *Cluster) readPrimaryLSN() (uint64, error) {
	cl.mu.Lock()
	login, timeout := cl.login, cl.timeout
	cl.mu.Unlock()
	if login == nil {
		return 0, errors.New("the cluster's hosts are not watched yet")
	}
	var primary *Host
	for _, h := range cl.hosts {
		if st := h.State(); st.Role == RolePrimary && !st.Down {
			primary = h
			break
		}
	}
	if primary == nil {
		return 0, errors.New("no reachable primary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if cl.lsnConn != nil && cl.lsnHost != primary {
		cl.lsnConn.nc.Close()
		cl.lsnConn = nil
	}
	if cl.lsnConn == nil {
		cc, err := primary.connect(ctx, login().at(primary))
		if err != nil {
			return 0, err
		}
		cl.lsnConn, cl.lsnHost = cc, primary
	}
	row, err := cl.lsnConn.queryRow(ctx, "SELECT pg_current_wal_insert_lsn()")
	if err != nil {
		cl.lsnConn.nc.Close()
		cl.lsnConn = nil
		return 0, fmt.Errorf("read the primary's WAL position: %w", err)
	}
	return ParseLSN(row[0])
}

// replayWaiter is a client waiting for a standby to replay up to lsn.
//
// Owners: WaitReplay's goroutine makes it and queues it on Host.waiters under h.mu; lsn
// never changes. The standby's poller closes ch under h.mu when the standby has replayed
// that far, after it took the waiter off the list; the waiting goroutine only receives.
type replayWaiter struct {
	lsn uint64
	ch  chan struct{}
}

// WaitReplay returns once h has replayed WAL up to lsn, or ctx's error.
func (h *Host) WaitReplay(ctx context.Context, lsn uint64) error {
	h.mu.Lock()
	if max(h.lsn, h.replayed) >= lsn {
		h.mu.Unlock()
		return nil
	}
	if h.shut {
		h.mu.Unlock()
		return ErrClosed
	}
	w := &replayWaiter{lsn: lsn, ch: make(chan struct{})}
	h.waiters = append(h.waiters, w)
	if !h.polling {
		h.polling = true
		h.cl.wg.Add(1)
		go h.pollReplay()
	}
	h.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		if i := slices.Index(h.waiters, w); i >= 0 {
			h.waiters = slices.Delete(h.waiters, i, i+1)
		}
		h.mu.Unlock()
		select {
		case <-w.ch: // served meanwhile
			return nil
		default:
		}
		return ctx.Err()
	}
}

// pollReplay is a standby's poller: it runs while clients wait on the standby.
func (h *Host) pollReplay() {
	cl := h.cl
	defer cl.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		lsn, err := h.readReplayed()
		h.mu.Lock()
		if err == nil && lsn > h.replayed {
			h.replayed = lsn
		}
		done := max(h.lsn, h.replayed)
		kept := h.waiters[:0]
		for _, w := range h.waiters {
			if w.lsn <= done {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		clear(h.waiters[len(kept):])
		h.waiters = kept
		if len(kept) == 0 {
			h.polling = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		wait := replayPoll
		if err != nil {
			wait = 50 * time.Millisecond
		}
		t.Reset(wait)
		select {
		case <-cl.stop:
			h.mu.Lock()
			h.polling = false
			h.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// readReplayed asks the standby its replayed position on the poller's connection.
func (h *Host) readReplayed() (uint64, error) {
	cl := h.cl
	cl.mu.Lock()
	login, timeout := cl.login, cl.timeout
	cl.mu.Unlock()
	if login == nil {
		return 0, errors.New("the cluster's hosts are not watched yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if h.pollConn == nil {
		cc, err := h.connect(ctx, login().at(h))
		if err != nil {
			return 0, err
		}
		h.pollConn = cc
	}
	row, err := h.pollConn.queryRow(ctx, "SELECT pg_last_wal_replay_lsn()")
	if err != nil {
		h.pollConn.nc.Close()
		h.pollConn = nil
		return 0, err
	}
	if row[0] == "" {
		return 0, errors.New("not a standby: pg_last_wal_replay_lsn() is NULL")
	}
	return ParseLSN(row[0])
}
