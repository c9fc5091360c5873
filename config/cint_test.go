package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSetNumbersAsPgBouncer: a [pgbouncer] integer is read as PgBouncer 1.18 reads it
// (strtol, base 0), in the file and through the console's SET alike: 0x1f is 31, 017 is
// 15 and 08 an error, a sign may lead; seconds are read as its strtod reads them, 0x10
// and 1e2 included. pgmux refused 0x1f ("is not an integer") and read 017 as 17. Values
// PgBouncer cuts to fit an int (99999999999) pgmux refuses.
func TestSetNumbersAsPgBouncer(t *testing.T) {
	for _, c := range []struct {
		key, value string
		want       any // the value set, or "error"
	}{
		{"default_pool_size", "0x1f", 31},
		{"default_pool_size", "0X1F", 31},
		{"default_pool_size", "017", 15},
		{"default_pool_size", "0", 0},
		{"default_pool_size", "+5", 5},
		{"default_pool_size", "08", "error"},
		{"default_pool_size", "1_000", "error"},
		{"default_pool_size", "0b11", "error"},
		{"default_pool_size", "0o7", "error"},
		{"default_pool_size", "1e3", "error"},
		{"default_pool_size", "1.5", "error"},
		{"default_pool_size", "0x", "error"},
		{"default_pool_size", "-0x10", "error"}, // -16: out of range
		{"max_client_conn", "99999999999", "error"},
		{"max_client_conn", "0x7fffffffffffffffff", "error"},
		{"query_timeout", "0x10", 16 * time.Second},
		{"query_timeout", "1e2", 100 * time.Second},
		{"query_timeout", "1.5e1", 15 * time.Second},
		{"query_timeout", "1e3ms", time.Second},
		{"query_timeout", "0xg", "error"},
		{"query_timeout", "1e", "error"},
		{"query_timeout", "inf", "error"},
		{"query_timeout", "nan", "error"},
	} {
		cfg := Default()
		err := Set(cfg, c.key, c.value)
		if c.want == "error" {
			require.Error(t, err, "%s = %s", c.key, c.value)
			continue
		}
		require.NoError(t, err, "%s = %s", c.key, c.value)
		switch want := c.want.(type) {
		case int:
			got := map[string]int{"default_pool_size": cfg.DefaultPoolSize, "max_client_conn": cfg.MaxClientConn}[c.key]
			require.Equal(t, want, got, "%s = %s", c.key, c.value)
		case time.Duration:
			require.Equal(t, want, cfg.QueryTimeout, "%s = %s", c.key, c.value)
		}
	}
	// What SHOW CONFIG prints back: decimal.
	cfg := Default()
	require.NoError(t, Set(cfg, "default_pool_size", "0x1f"))
	require.NoError(t, SetIgnored(cfg, "tcp_user_timeout", "0x10"))
	got := map[string]string{}
	for _, kv := range Dump(cfg) {
		got[kv[0]] = kv[1]
	}
	require.Equal(t, "31", got["default_pool_size"])
	require.Equal(t, "16", cfg.Ignored["tcp_user_timeout"])
}
