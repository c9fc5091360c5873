package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestMain(m *testing.M) { muxtest.Main(m) }

// startMux serves pgmux in transaction mode in front of a private database of the test
// PostgreSQL and returns the URL of that database through it. The statement cache per
// server is small so the prepared workload makes pgmux evict.
func startMux(t *testing.T) string {
	t.Helper()
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "pgload")
	m := muxtest.Start(t, pg, muxtest.Options{Ini: &muxtest.Ini{PoolSize: 5,
		Extra: []string{"max_prepared_statements = 50", "query_wait_timeout = 30"}}})
	return m.URL(pgtest.AppUser, pgtest.AppPassword, db)
}

// pgload runs the command in this process with -url and -json added and returns the
// JSON object it printed and the error it returned.
func pgload(t *testing.T, stop context.Context, url string, args ...string) (map[string]any, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(stop, append([]string{"-url", url, "-json"}, args...), &stdout, &stderr)
	t.Logf("pgload %s:\n%s", strings.Join(args, " "), stderr.String())
	if stdout.Len() == 0 {
		return nil, err
	}
	var got map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), stdout.String())
	return got, err
}

// TestWorkloads runs every workload for a second or two through pgmux: each must pass
// its own checks with no error at all.
func TestWorkloads(t *testing.T) {
	url := startMux(t)
	tests := []struct {
		workload string
		args     []string
		check    func(t *testing.T, got map[string]any)
	}{
		{"select", []string{"-clients", "4", "-duration", "1s"}, nil},
		{"select", []string{"-clients", "4", "-duration", "1s", "-exec-mode", "simple", "-sql", "SELECT generate_series(1, 10)"}, nil},
		{"idle", []string{"-clients", "60", "-duration", "1s", "-rate", "100", "-connect-concurrency", "20"},
			func(t *testing.T, got map[string]any) {
				require.EqualValues(t, 60, got["held"])
				require.EqualValues(t, 60, got["usable_after_hold"])
				require.EqualValues(t, 60, got["connected"])
			}},
		{"listen", []string{"-clients", "6", "-channels", "3", "-notifiers", "2", "-notifies", "150", "-duration", "2s"},
			func(t *testing.T, got map[string]any) {
				// Each of 2 notifiers sends 50 on each of 3 channels; each listener hears one channel.
				require.EqualValues(t, 6*2*50, got["expected_deliveries"])
				require.EqualValues(t, 6*2*50, got["deliveries"])
				require.EqualValues(t, 300, got["tx"])
				for _, k := range []string{"missing", "duplicate", "out_of_order", "unexpected"} {
					require.EqualValues(t, 0, got[k], k)
				}
			}},
		{"prepared", []string{"-clients", "4", "-statements", "120", "-duration", "1s"},
			func(t *testing.T, got map[string]any) {
				require.Positive(t, got["cached_tx"])
				require.Positive(t, got["named_tx"])
			}},
		{"sticky", []string{"-clients", "8", "-sticky-ratio", "0.5", "-duration", "1500ms"},
			func(t *testing.T, got map[string]any) {
				require.EqualValues(t, 4, got["sticky_clients"])
				require.Positive(t, got["plain_tx"])
				for _, k := range stickyKinds {
					require.Positive(t, got["sticky_"+k], k)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.workload, func(t *testing.T) {
			got, err := pgload(t, context.Background(), url, append([]string{"-workload", tt.workload}, tt.args...)...)
			require.NoError(t, err)
			require.Equal(t, true, got["ok"], got)
			require.Empty(t, got["errors"])
			require.EqualValues(t, 0, got["wrong"])
			require.Positive(t, got["tx"])
			require.Positive(t, got["p99_ms"])
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestFailureIsReported checks that errors fail the run unless -max-errors allows them.
func TestFailureIsReported(t *testing.T) {
	url := startMux(t)
	args := []string{"-workload", "select", "-clients", "2", "-duration", "300ms", "-sql", "SELECT 1/0"}
	got, err := pgload(t, context.Background(), url, args...)
	require.ErrorIs(t, err, errFailed)
	require.Equal(t, false, got["ok"])
	require.Positive(t, got["errors"].(map[string]any)["22012"], "division_by_zero counted by SQLSTATE")

	got, err = pgload(t, context.Background(), url, append(args, "-max-errors", "1000000")...)
	require.NoError(t, err)
	require.Equal(t, true, got["ok"])
}

// TestStopEarly checks that a stop (SIGINT in main) ends the run at once with a summary.
func TestStopEarly(t *testing.T) {
	url := startMux(t)
	stop, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	got, err := pgload(t, stop, url, "-workload", "select", "-clients", "3", "-duration", "1m")
	require.NoError(t, err)
	require.Less(t, time.Since(start), 20*time.Second)
	require.Less(t, got["seconds"], 10.0)
	require.Positive(t, got["tx"])
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-workload", "nope"},
		{"-clients", "0"},
		{"-exec-mode", "fast"},
		{"-sticky-ratio", "2"},
		{"-duration", "0s"},
		{"extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			err := run(context.Background(), append([]string{"-url", "postgres://x@127.0.0.1/x"}, args...), io.Discard, io.Discard)
			var ue usageError
			require.True(t, errors.As(err, &ue), fmt.Sprint(err))
		})
	}
	err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
}
