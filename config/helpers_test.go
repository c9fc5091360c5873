package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeFile writes content to dir/name (creating parent directories) and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// loadString writes an ini into a temp dir and loads it.
func loadString(t *testing.T, content string) (*Config, string, error) {
	t.Helper()
	p := writeFile(t, t.TempDir(), "pgbouncer.ini", content)
	c, err := Load(p)
	return c, p, err
}
