package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeListsEverySetting keeps the README's settings table in step with the table
// the loader uses, and its list of the PgBouncer settings pgmux ignores with the keys the
// loader ignores.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, s := range Keys() {
		require.True(t, strings.Contains(string(readme), "| `"+s.Name+"` |"), "README.md lacks a row for %s", s.Name)
	}
	for _, s := range ignoredSettings {
		require.True(t, strings.Contains(string(readme), "`"+s.name+"`,") || strings.Contains(string(readme), "`"+s.name+"` ("),
			"README.md does not name %s among the settings pgmux ignores", s.name)
	}
}
