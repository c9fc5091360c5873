package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestLogSinkReload: the logger follows verbose and logfile on reload, as the settings
// table says they are reloadable: debug lines appear once verbose is raised, and lines go
// to the new logfile (the old one is let go, a rotated one reopened).
func TestLogSinkReload(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	cfg := config.Default()
	cfg.LogFile = first
	var stderr bytes.Buffer
	log, sink, err := newLogger(cfg, "info", &stderr)
	require.NoError(t, err)
	log.Debug("hidden at verbose 0")
	log.Info("to a")

	next := cfg.Clone()
	next.LogFile, next.Verbose = second, 1
	require.NoError(t, sink.apply(next))
	log.Debug("shown at verbose 1")
	log.Info("to b")

	a, err := os.ReadFile(first)
	require.NoError(t, err)
	b, err := os.ReadFile(second)
	require.NoError(t, err)
	require.Contains(t, string(a), "to a")
	require.NotContains(t, string(a), "hidden at verbose 0")
	require.NotContains(t, string(a), "to b", "the old logfile is let go")
	require.Contains(t, string(b), "shown at verbose 1")
	require.Contains(t, string(b), "to b")
	require.Contains(t, stderr.String(), "shown at verbose 1", "stderr follows the level too")

	// A logfile that cannot be opened fails the reload and changes nothing.
	bad := next.Clone()
	bad.LogFile, bad.Verbose = filepath.Join(dir, "missing", "c.log"), 0
	require.Error(t, sink.apply(bad))
	log.Debug("still verbose")
	b, err = os.ReadFile(second)
	require.NoError(t, err)
	require.Contains(t, string(b), "still verbose")
}
