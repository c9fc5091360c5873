package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"pool", "pool", 0},
		{"pgbouncr", "pgbouncer", 1}, {"defualt_pool_size", "default_pool_size", 1},
		{"kitten", "sitting", 3}, {"Users", "users", 0}, {"ab", "ba", 1},
	} {
		require.Equal(t, tt.want, editDistance(tt.a, tt.b), "%q vs %q", tt.a, tt.b)
	}
}

func TestDidYouMean(t *testing.T) {
	require.Equal(t, ` (did you mean "users"?)`, didYouMean("usres", knownSections))
	require.Equal(t, "", didYouMean("whatever", knownSections))
	// Short names take one edit only: "user" is not a typo of "peers".
	require.Equal(t, "", didYouMean("usr", []string{"users"}))
	require.Equal(t, ` (did you mean "listen_port"?)`, didYouMean("listen_prot", settingNames()))
}
