package pool

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const sec = time.Second

// TestWALHistoryLag: a standby's lag is how long ago the primary was at the position the
// standby replayed, against the primary's recorded positions and times.
func TestWALHistoryLag(t *testing.T) {
	var w walHistory
	var seen replaySeen
	_, ok := w.lag(0x100, 10*sec, &seen)
	require.False(t, ok, "nothing recorded: nothing to measure against")

	// An idle primary: the same position for ten seconds. A standby there lags 0, however
	// long the primary stays idle.
	for i := range 10 {
		w.add(0x100, time.Duration(i)*sec)
	}
	require.Equal(t, 1, w.n, "an unchanged position is one mark")
	for _, now := range []time.Duration{10 * sec, time.Hour} {
		lag, ok := w.lag(0x100, now, &seen)
		require.True(t, ok)
		require.Zero(t, lag)
	}
	_, ok = w.lag(0, 10*sec, &seen)
	require.False(t, ok, "no replayed position known")

	// The primary writes at 10 s and 11 s; the standby (its receiver stopped) stays at
	// 0x100: its lag runs from the last time the primary was seen there (9 s).
	w.add(0x200, 10*sec)
	w.add(0x300, 11*sec)
	for _, now := range []time.Duration{12 * sec, 20 * sec, 100 * sec} {
		lag, _ := w.lag(0x100, now, &seen)
		require.Equal(t, now-9*sec, lag, "at %v", now)
	}
	// Between two recorded positions: in proportion to the WAL written in between.
	lag, _ := w.lag(0x180, 12*sec, &seen)
	require.Equal(t, 12*sec-(9*sec+sec/2), lag)
	lag, _ = w.lag(0x200, 12*sec, &seen)
	require.Equal(t, 2*sec, lag, "at a recorded position: when the primary was last seen there")
	// At or past the newest position: caught up.
	for _, r := range []uint64{0x300, 0x400} {
		lag, ok := w.lag(r, 12*sec, &seen)
		require.True(t, ok)
		require.Zero(t, lag)
	}
	// A standby measured before the primary's position was read (its answer arrived
	// first): no negative lag.
	lag, _ = w.lag(0x2ff, 10*sec, &seen)
	require.Zero(t, lag)
}

// TestWALHistoryBounded: the history keeps walHistoryLen positions; a standby behind all
// of them lags at least as long as the oldest is old, and one that replays nothing more
// keeps its reference, so that its lag goes on growing after its position left the
// history.
func TestWALHistoryBounded(t *testing.T) {
	var w walHistory
	var seen replaySeen
	for i := range walHistoryLen {
		w.add(uint64(i+1)*0x100, time.Duration(i)*sec)
	}
	lag, _ := w.lag(0x100, time.Duration(walHistoryLen)*sec, &seen)
	require.Equal(t, time.Duration(walHistoryLen)*sec, lag)
	for i := walHistoryLen; i < 3*walHistoryLen; i++ {
		w.add(uint64(i+1)*0x100, time.Duration(i)*sec)
	}
	require.Equal(t, walHistoryLen, w.n, "bounded")
	require.Equal(t, uint64(2*walHistoryLen+1)*0x100, w.mark(0).lsn, "the oldest went first")
	now := time.Duration(3*walHistoryLen) * sec
	lag, _ = w.lag(0x100, now, &seen)
	require.Equal(t, now, lag, "the same replayed position: the same reference (0 s)")

	var fresh replaySeen
	lag, _ = w.lag(0x180, now, &fresh)
	require.Equal(t, now-time.Duration(2*walHistoryLen)*sec, lag,
		"below every recorded position: at least as old as the oldest")
}

// TestWALHistoryReset: a position that goes back (a restored or rewound primary) starts
// the history anew, and what a standby remembers of the old one is not used.
func TestWALHistoryReset(t *testing.T) {
	var w walHistory
	var seen replaySeen
	w.add(0x100, 0)
	w.add(0x300, sec)
	lag, _ := w.lag(0x100, 5*sec, &seen)
	require.Equal(t, 5*sec, lag)
	gen := w.gen
	w.add(0x40, 6*sec)
	require.NotEqual(t, gen, w.gen)
	require.Equal(t, 1, w.n)
	w.add(0x1c0, 8*sec)
	lag, _ = w.lag(0x100, 10*sec, &seen)
	require.Equal(t, 3*sec, lag, "measured on the new history (halfway from 6 s to 8 s), not remembered from the old one")
}

// TestClusterReplayLag: through the checker's rows, a standby whose server reports lag 0
// (its receiver stopped: received = replayed) lags in SHOW HOSTS, the metrics' source
// (States) and routing (Standbys) once the primary's recorded flushed position moves past
// it; an idle primary keeps it at 0; with no reachable primary the server's measure
// stands; a promoted standby's positions start a new history.
func TestClusterReplayLag(t *testing.T) {
	cl := testCluster([]Role{RoleUnknown, RoleUnknown})
	primary, standby := cl.hosts[0], cl.hosts[1]
	now := time.Now()
	check := func(h *Host, row ...string) {
		t.Helper()
		require.NoError(t, h.noteCheck(row, time.Now()))
	}
	// The standby is checked before any primary position is known: its server's measure.
	check(standby, "t", "0/3002000", "0", "")
	require.Equal(t, int64(0), standby.State().LagMs)

	// An idle primary, flushed to 0/3002000 for a while (its insert position is past the
	// next page's header); the standby has replayed that.
	require.NoError(t, primary.noteCheck([]string{"f", "0/3002018", "0", "0/3002000"}, now.Add(-20*sec)))
	require.NoError(t, primary.noteCheck([]string{"f", "0/3002018", "0", "0/3002000"}, now.Add(-5*sec)))
	check(standby, "t", "0/3002000", "0", "")
	st := cl.States()
	require.Equal(t, int64(0), st[1].LagMs, "an idle primary: no lag")
	require.Equal(t, int64(0), st[1].LagBytes, "measured against the flushed position, not the insert one past a page header")
	require.Len(t, cl.Standbys(time.Second), 1)

	// The primary writes; the standby receives nothing more, and its server says 0.
	require.NoError(t, primary.noteCheck([]string{"f", "0/3050000", "0", "0/3050000"}, now.Add(-4*sec)))
	check(standby, "t", "0/3002000", "0", "")
	st = cl.States()
	require.GreaterOrEqual(t, st[1].LagMs, int64(5000), "lag from the last time the primary was seen at the standby's position")
	require.Less(t, st[1].LagMs, int64(6000))
	require.Equal(t, int64(0x3050000-0x3002000), st[1].LagBytes)
	require.Empty(t, cl.Standbys(4*sec), "over replica_max_lag: no reads")
	require.Len(t, cl.Standbys(time.Minute), 1)

	// It catches up.
	check(standby, "t", "0/3050000", "0", "")
	require.Equal(t, int64(0), standby.State().LagMs)

	// No reachable primary: nothing to measure against; the server's measure stands.
	require.NoError(t, primary.noteCheck([]string{"f", "0/3060000", "0", "0/3060000"}, now.Add(-3*sec)))
	primary.noteDown(errors.New("connection refused"))
	check(standby, "t", "0/3050000", "1234", "")
	require.Equal(t, int64(1234), standby.State().LagMs)

	// The standby is promoted: its positions start a new history; the old primary, back
	// as a standby of it, is measured against them.
	check(standby, "f", "0/3050200", "0", "0/3050200")
	check(primary, "t", "0/3050200", "0", "")
	require.Equal(t, int64(0), primary.State().LagMs)
	require.Equal(t, int64(0), cl.States()[0].LagBytes)
}
