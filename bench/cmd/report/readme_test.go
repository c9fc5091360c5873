package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const results = "../../results"

// stored renders the run kept in bench/results.
func stored(t *testing.T) ([]point, []idleResult, []string) {
	t.Helper()
	runs, err := readRuns(filepath.Join(results, "raw.tsv"))
	require.NoError(t, err)
	idle, err := readIdle(filepath.Join(results, "idle.tsv"))
	require.NoError(t, err)
	meta, err := readMeta(filepath.Join(results, "meta.txt"))
	require.NoError(t, err)
	for _, k := range []string{"date", "pgmux", "elapsed", "cpus", "mode"} {
		require.NotEmpty(t, metaMap(meta)[k], "meta.txt lacks %s", k)
	}
	require.Equal(t, "full", metaMap(meta)["mode"], "bench/results holds a full run")
	return summarize(runs), summarizeIdle(idle), meta
}

// TestReadmeFiguresComeFromResults: README.md's benchmark block and latest.md are exactly
// what report makes of bench/results' raw files, so every figure there traces to a run of
// bench/run.sh (whose date and commit they show), and the plots they show exist.
func TestReadmeFiguresComeFromResults(t *testing.T) {
	points, idle, meta := stored(t)
	readme, err := os.ReadFile("../../../README.md")
	require.NoError(t, err)
	want, err := spliceReadme(readme, readmeBlock(points, idle, meta))
	require.NoError(t, err)
	require.Equal(t, string(want), string(readme),
		"README.md's benchmark block is not what bench/results gives: (cd bench && go run ./cmd/report -out results -readme ../README.md)")

	latest, err := os.ReadFile(filepath.Join(results, "latest.md"))
	require.NoError(t, err)
	require.Equal(t, markdown(points, idle, meta), string(latest), "latest.md is not what bench/results gives")
	for _, png := range []string{"tps.png", "cpu.png", "p99.png", "idle.png"} {
		b, err := os.ReadFile(filepath.Join(results, png))
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("\x89PNG")), png)
		require.Contains(t, string(readme), "(bench/results/"+png+")")
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 30761: "30,761", 1234567: "1,234,567"} {
		require.Equal(t, want, thousands(v))
	}
}

func TestSpliceReadme(t *testing.T) {
	got, err := spliceReadme([]byte("a\n"+readmeBegin+"\nold\n"+readmeEnd+"\nb\n"), "new\n")
	require.NoError(t, err)
	require.Equal(t, "a\n"+readmeBegin+"\nnew\n"+readmeEnd+"\nb\n", string(got))
	_, err = spliceReadme([]byte("no markers"), "x")
	require.Error(t, err)
}
