package pool

import (
	"sort"
	"time"
)

// A standby's replay lag is measured against the primary's WAL positions as pgmux's own
// checker saw them, with pgmux's own monotonic clock: the lag is how long ago the primary
// was at the position the standby has replayed, 0 once the standby has replayed the
// primary's last recorded position. A standby whose WAL receiver stopped thus lags more
// and more as soon as the primary writes, while the server's own measure (receive =
// replay) says 0; an idle primary records no new position, so a standby that has
// replayed everything stays at 0. The positions are the primary's flushed ones
// (pg_current_wal_flush_lsn()): WAL not flushed yet cannot be on any standby, and the
// flush position ends where a record ends, as a standby's replayed one does (the insert
// position is past the next page's header when the last record ends a page).

// walHistoryLen bounds the positions kept: at one check a second while the primary
// writes, a little over four minutes. A standby behind all of them lags at least as long
// as the oldest is old (and, while it replays nothing, grows from what it was: replaySeen).
const walHistoryLen = 256

// walMark is one WAL position the primary's checker found, with the sending times of the
// first and the last check that found the primary there, on the cluster's clock.
type walMark struct {
	lsn         uint64
	first, last time.Duration
}

// walHistory is the primary's recorded positions, oldest first, in increasing order: a
// ring of the last walHistoryLen positions. It does no I/O, takes no locks and reads no
// clock: times come in as durations on the cluster's clock (Cluster.clock).
type walHistory struct {
	owner *Host  // the host that recorded them as the primary
	gen   uint64 // changes at each reset: what a standby remembers belongs to one history
	marks [walHistoryLen]walMark
	head  int // index of the oldest
	n     int
}

// replaySeen is what a standby's last lag computation found: when the primary was at the
// position the standby had replayed. It is kept so that a standby that replays nothing
// more keeps the same reference after that position left the history.
type replaySeen struct {
	gen uint64
	lsn uint64
	at  time.Duration
	ok  bool
}

// reset empties the history for a new owner (another primary, or one whose position went
// back: a restored or rewound server).
func (w *walHistory) reset(owner *Host) {
	w.owner, w.gen, w.head, w.n = owner, w.gen+1, 0, 0
}

func (w *walHistory) mark(i int) *walMark { return &w.marks[(w.head+i)%walHistoryLen] }

// add records that the primary was at lsn at time at (when the check was sent).
func (w *walHistory) add(lsn uint64, at time.Duration) {
	if w.n > 0 {
		newest := w.mark(w.n - 1)
		switch {
		case lsn == newest.lsn:
			newest.last = at
			return
		case lsn < newest.lsn:
			w.reset(w.owner)
		}
	}
	if w.n == walHistoryLen {
		w.head = (w.head + 1) % walHistoryLen
		w.n--
	}
	*w.mark(w.n) = walMark{lsn: lsn, first: at, last: at}
	w.n++
}

// reachedAt returns when the primary was at lsn, for a position the primary is known to
// have passed (below the newest mark): between the last time it was seen at the newest
// mark at or below lsn and the first time it was seen past lsn, in proportion to the WAL
// written in between. For a position below every mark, the oldest mark's first time (the
// primary was past it by then).
func (w *walHistory) reachedAt(lsn uint64) time.Duration {
	k := sort.Search(w.n, func(i int) bool { return w.mark(i).lsn > lsn })
	if k == 0 {
		return w.mark(0).first
	}
	a, b := w.mark(k-1), w.mark(k)
	frac := float64(lsn-a.lsn) / float64(b.lsn-a.lsn)
	return a.last + time.Duration(frac*float64(b.first-a.last))
}

// lag returns how far behind the primary a standby is that had replayed up to replayed
// at time now, and false when there is no recorded position to measure against. seen is
// the standby's memory of its last computation, updated.
func (w *walHistory) lag(replayed uint64, now time.Duration, seen *replaySeen) (time.Duration, bool) {
	if w.n == 0 || replayed == 0 {
		return 0, false
	}
	if replayed >= w.mark(w.n-1).lsn {
		*seen = replaySeen{}
		return 0, true
	}
	if !seen.ok || seen.gen != w.gen || seen.lsn != replayed {
		*seen = replaySeen{gen: w.gen, lsn: replayed, at: w.reachedAt(replayed), ok: true}
	}
	return max(now-seen.at, 0), true
}

// clock is t on the cluster's clock: pgmux's monotonic time since the cluster was made.
func (cl *Cluster) clock(t time.Time) time.Duration { return t.Sub(cl.epoch) }

// noteWAL takes a check's WAL positions: a primary's flushed position goes into the
// history (sent is when its check was sent); a standby's lag is measured against it as of
// now, when the standby's answer arrived. It returns false when there is nothing to
// measure against (no position recorded, or their host is no longer a reachable primary):
// the server's own measure stands.
func (cl *Cluster) noteWAL(h *Host, role Role, replayed, flushed uint64, sent, now time.Time) (time.Duration, bool) {
	cl.histMu.Lock()
	defer cl.histMu.Unlock()
	w := &cl.hist
	if role == RolePrimary {
		if flushed != 0 {
			if w.owner != h {
				w.reset(h)
			}
			w.add(flushed, cl.clock(sent))
		}
		return 0, false
	}
	if w.owner == nil || !w.owner.primaryUp() {
		return 0, false
	}
	return w.lag(replayed, cl.clock(now), &h.seen)
}
