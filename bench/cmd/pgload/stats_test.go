package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestBuckets(t *testing.T) {
	// Every value falls in a bucket whose range holds it, buckets are in order and at
	// most 1/32 of their value wide.
	prev := -1
	for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 4095, 4096, 1 << 20, 1<<40 - 1} {
		b := bucketOf(us)
		require.GreaterOrEqual(t, b, prev, "bucket of %d", us)
		require.Less(t, b, histBuckets)
		low, width := bucketRange(b)
		require.True(t, low <= us && us < low+width, "%d in bucket %d [%d, %d)", us, b, low, low+width)
		if us >= histLinear {
			require.LessOrEqual(t, width*32, low, "bucket %d too wide", b)
		}
		prev = b
	}
	require.Equal(t, histBuckets-1, bucketOf(1<<62), "huge values land in the last bucket")
	for b := range histBuckets - 1 {
		low, width := bucketRange(b)
		next, _ := bucketRange(b + 1)
		require.Equal(t, low+width, next, "bucket %d ends where %d starts", b, b+1)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
		tol    float64 // relative
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one value", []time.Duration{7 * time.Millisecond}, 0.99, 7 * time.Millisecond, 0.03},
		{"small exact", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond, 0},
		{"p50 of 1..1000 ms", series(1000, time.Millisecond), 0.5, 500 * time.Millisecond, 0.03},
		{"p99 of 1..1000 ms", series(1000, time.Millisecond), 0.99, 990 * time.Millisecond, 0.03},
		{"p100 is the max", series(1000, time.Millisecond), 1, 1000 * time.Millisecond, 0},
		{"p0 is the min", series(1000, time.Millisecond), 0, time.Millisecond, 0.03},
		{"negative counts as 0", []time.Duration{-time.Second}, 0.5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Hist
			for _, v := range tt.values {
				h.Add(v)
			}
			got := h.Quantile(tt.q)
			require.InDelta(t, float64(tt.want), float64(got), tt.tol*float64(tt.want)+1, "got %v", got)
		})
	}
}

// series returns 1*unit, 2*unit, ... n*unit.
func series(n int, unit time.Duration) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration(i+1) * unit
	}
	return s
}

func TestHistMerge(t *testing.T) {
	var a, b, all Hist
	for i, v := range series(200, 100*time.Microsecond) {
		all.Add(v)
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	a.Merge(&b)
	require.Equal(t, all, a)
	require.Equal(t, uint64(200), a.Count())
	require.Equal(t, 20*time.Millisecond, a.Max())
	require.Equal(t, 10050*time.Microsecond, a.Mean())
}

func TestStats(t *testing.T) {
	s := NewStats()
	for i := range 100 {
		s.Done(i, time.Duration(i+1)*time.Millisecond)
	}
	s.Latency(3, time.Second) // no transaction
	s.Error("", &pgconn.PgError{Code: "53300", Message: "too many clients"})
	s.Error("", &pgconn.PgError{Code: "53300", Message: "too many clients"})
	s.Error("connect", fmt.Errorf("dial: %w", context.DeadlineExceeded))
	s.Wrong("client 1: 2 != 3")
	h, errs, samples := s.Snapshot()
	require.Equal(t, int64(100), s.tx.Load())
	require.Equal(t, uint64(101), h.Count())
	require.Equal(t, time.Second, h.Max())
	require.Equal(t, map[string]int64{"53300": 2, "connect timeout": 1}, errs)
	require.Equal(t, int64(1), s.wrong.Load())
	require.Len(t, samples, 3, "one sample per error kind and per wrong result")
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "26000"}, "26000"},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "08P01"}), "08P01"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{io.ErrUnexpectedEOF, "connection closed"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "connection refused"},
		{errors.New("something else"), "client"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			require.Equal(t, tt.want, ErrorKind(tt.err))
		})
	}
}
