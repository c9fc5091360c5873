package proxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMonoTimes: a loop's clock reading (taken at its wake-up) stands for the time now,
// and a duration from a later reading to it counts as zero, not as a negative time in
// SHOW STATS and the histograms.
func TestMonoTimes(t *testing.T) {
	wake := time.Now()
	require.Equal(t, monoOf(wake), monoOrNow(wake))
	before := monoNow()
	now := monoOrNow(time.Time{})
	require.False(t, now < before, "a zero reading reads the clock")
	later := monoOf(wake.Add(time.Millisecond))
	require.Equal(t, time.Millisecond, later.sub(monoOf(wake)))
	require.Zero(t, monoOf(wake).sub(later), "a reading from before the start counts as no time")
}
