package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// env builds a getenv from a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{name: "nothing set", vars: nil, check: func(t *testing.T, c *Config) { require.Equal(t, Dump(Default()), Dump(c)) }},
		{name: "all", vars: map[string]string{
			"PGMUX_LISTEN": "0.0.0.0:7432", "PGMUX_POOL_MODE": "transaction", "PGMUX_POOL_SIZE": "8",
			"PGMUX_MAX_CLIENT_CONN": "5000", "PGMUX_METRICS_ADDR": ":9100", "PGMUX_AUTH_TYPE": "scram-sha-256",
		}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"0.0.0.0"}, c.ListenAddr)
			require.Equal(t, 7432, c.ListenPort)
			require.Equal(t, PoolModeTransaction, c.PoolMode)
			require.Equal(t, 8, c.DefaultPoolSize)
			require.Equal(t, 5000, c.MaxClientConn)
			require.Equal(t, ":9100", c.MetricsAddr)
			require.Equal(t, AuthSCRAM, c.AuthType)
		}},
		{name: "ipv6 listen", vars: map[string]string{"PGMUX_LISTEN": "[::1]:6432"}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"::1"}, c.ListenAddr)
		}},
		{name: "all addresses", vars: map[string]string{"PGMUX_LISTEN": ":6000"}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"*"}, c.ListenAddr)
			require.Equal(t, 6000, c.ListenPort)
		}},
		{name: "listen list", vars: map[string]string{"PGMUX_LISTEN": "127.0.0.1:6500, [::1]:6500,fly-local-6pn:6500"}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"127.0.0.1", "::1", "fly-local-6pn"}, c.ListenAddr)
			require.Equal(t, 6500, c.ListenPort)
			require.Equal(t, "127.0.0.1,::1,fly-local-6pn", showValue(c, "listen_addr"), "SHOW CONFIG")
		}},
		{name: "listen list with all", vars: map[string]string{"PGMUX_LISTEN": ":6000,[::]:6000"}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"*", "::"}, c.ListenAddr)
		}},
		{name: "listen ports differ", vars: map[string]string{"PGMUX_LISTEN": "127.0.0.1:6432,[::1]:6433"},
			wantErr: `PGMUX_LISTEN: "127.0.0.1:6432,[::1]:6433": ports 6432 and 6433 differ: pgmux listens on one port (listen_port) on every address`},
		{name: "listen list empty item", vars: map[string]string{"PGMUX_LISTEN": "127.0.0.1:6432,"},
			wantErr: `PGMUX_LISTEN: "127.0.0.1:6432," has an empty address`},
		{name: "listen list bad item", vars: map[string]string{"PGMUX_LISTEN": "127.0.0.1:6432,::1:6432"},
			wantErr: `PGMUX_LISTEN: "::1:6432" is not host:port`},
		{name: "bad listen", vars: map[string]string{"PGMUX_LISTEN": "6432"}, wantErr: `PGMUX_LISTEN: "6432" is not host:port`},
		{name: "bad listen port", vars: map[string]string{"PGMUX_LISTEN": "h:x"}, wantErr: `PGMUX_LISTEN: listen_port: "x" is not an integer`},
		{name: "several bad", vars: map[string]string{"PGMUX_POOL_SIZE": "lots", "PGMUX_POOL_MODE": "sometimes"},
			wantErr: "PGMUX_POOL_MODE: pool_mode: \"sometimes\" is not a pool mode (session, transaction or statement)\n" +
				"PGMUX_POOL_SIZE: default_pool_size: \"lots\" is not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := ApplyEnv(c, env(tt.vars))
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// showValue is key's value in SHOW CONFIG (Dump).
func showValue(c *Config, key string) string {
	for _, kv := range Dump(c) {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

func TestSetListenLeavesConfigOnError(t *testing.T) {
	c := Default()
	require.Error(t, SetListen(c, "bad host:1"))
	require.Error(t, SetListen(c, "127.0.0.1:7000,bad host:7000"))
	require.Error(t, SetListen(c, "127.0.0.1:7000,[::1]:7001"))
	require.Empty(t, c.ListenAddr)
	require.Equal(t, 6432, c.ListenPort)
}

// TestEnvWarnings: only PGMUX_ variables pgmux does not read are named, in order, each
// with the variable meant when one is close or sets the same key.
func TestEnvWarnings(t *testing.T) {
	require.Empty(t, EnvWarnings(nil))
	require.Empty(t, EnvWarnings([]string{"PGMUX_UPSTREAM=postgres://x", "PGMUX_LISTEN=:6432", "DATABASE_URL=x",
		"PATH=/bin", "PGMUXNOT=1", "pgmux_pool_size=3"}))
	require.Equal(t, []string{
		`environment variable PGMUX_MAX_CLIENT_CON is not one pgmux reads and is ignored (did you mean "PGMUX_MAX_CLIENT_CONN"?)`,
		`environment variable PGMUX_METRICS_ADDRESS is not one pgmux reads and is ignored`,
	}, trimList(EnvWarnings([]string{"PGMUX_METRICS_ADDRESS=:9127", "PGMUX_MAX_CLIENT_CON=10", "PGMUX_POOL_SIZE=3"})))
}

// trimList cuts each warning at " (pgmux reads", the list of every variable.
func trimList(ws []string) []string {
	for i, w := range ws {
		ws[i], _, _ = strings.Cut(w, " (pgmux reads")
	}
	return ws
}
