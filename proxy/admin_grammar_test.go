package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAdminSetNumbers: the console's SET reads numbers as PgBouncer 1.18's does: an
// unquoted value is a word of letters, digits and underscores, so 1.5 and -1 must be
// quoted (unquoted they are "invalid command", 08P01), and an integer is C's: 0x1f is
// 31, 017 is 15; seconds take 0x10 too. SHOW CONFIG prints them back in decimal.
// pgmux took SET query_timeout = 1.5 unquoted and refused 0x1f ("is not an integer").
func TestAdminSetNumbers(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ q, key, value string }{
		{"SET default_pool_size = 0x1f", "default_pool_size", "31"},
		{"SET min_pool_size = '017'", "min_pool_size", "15"},
		{"SET query_timeout = 0x10", "query_timeout", "16"},
		{"SET query_wait_timeout = '1.5'", "query_wait_timeout", "1.5"},
	} {
		tag, err := adm.Exec(ctx, c.q)
		require.NoError(t, err, c.q)
		require.True(t, strings.HasPrefix(tag.String(), "SET "+c.key+"="), "%s: %s", c.q, tag)
		_, rows := show(t, adm, "SHOW CONFIG")
		require.Equal(t, c.value, rowWhere(rows, "key", c.key)["value"], c.q)
	}
	for _, q := range []string{"SET query_timeout = 1.5", "SET default_pool_size = -1", "SET default_pool_size = 08",
		"PAUSE app-1", "PAUSE " + strings.Repeat("a", 64)} {
		_, err := adm.Exec(ctx, q)
		require.Equal(t, "08P01", sqlState(err), "%s: %v", q, err)
	}
	_, rows := show(t, adm, "SHOW CONFIG")
	require.Equal(t, "16", rowWhere(rows, "key", "query_timeout")["value"], "a refused SET changes nothing")
	require.Equal(t, 31, h.srv.Config().DefaultPoolSize)
}
