package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeListsEverySetting keeps the README's settings table in step with the table
// the loader uses.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, s := range Describe(Default()) {
		require.True(t, strings.Contains(string(readme), "| `"+s.Name+"` |"), "README.md lacks a row for %s", s.Name)
	}
}
