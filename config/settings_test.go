package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readSettingsTSV loads the PgBouncer 1.25 reference: key -> default, changeable.
func readSettingsTSV(t *testing.T) map[string][2]string {
	t.Helper()
	data, err := os.ReadFile("testdata/pgbouncer-1.25-settings.tsv")
	require.NoError(t, err)
	out := map[string][2]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(line, "\t")
		require.Len(t, f, 3, line)
		out[f[0]] = [2]string{f[1], f[2]}
	}
	return out
}

// tsvDefaultExceptions are keys whose SHOW CONFIG default is not what the ini default is.
var tsvDefaultExceptions = map[string]string{
	"verbose": "0", // SHOW CONFIG prints it empty; the value is 0
}

func TestEveryPgBouncerKeyIsKnown(t *testing.T) {
	for key := range readSettingsTSV(t) {
		_, implemented := settingIndex[key]
		require.True(t, implemented || unsupportedSettings[key], "PgBouncer key %s is neither implemented nor listed as unsupported", key)
		require.False(t, implemented && unsupportedSettings[key], "%s is both implemented and unsupported", key)
	}
}

func TestDefaultsMatchPgBouncer(t *testing.T) {
	ref := readSettingsTSV(t)
	c := Default()
	for _, s := range settings {
		t.Run(s.name, func(t *testing.T) {
			r, ok := ref[s.name]
			if !ok {
				require.Contains(t, []string{"metrics_addr", "prepared_statement_mode", "direct_pool_size", "shutdown_timeout", "listen_mode", "cache_unnamed_statements", "failover_timeout", "replica_reads", "replica_max_lag", "replica_max_wait", "client_loop", "adaptive_procs"}, s.name)
				return
			}
			want := r[0]
			if ex, ok := tsvDefaultExceptions[s.name]; ok {
				want = ex
			}
			require.Equal(t, want, s.def, "default")
			require.Equal(t, want, s.show(c), "shown value of Default()")
			require.Equal(t, r[1] == "yes", s.reloadable, "changeable")
		})
	}
}

func TestDefaultValues(t *testing.T) {
	c := Default()
	require.Equal(t, 6432, c.ListenPort)
	require.Empty(t, c.ListenAddr)
	require.Equal(t, "/tmp", c.UnixSocketDir)
	require.Equal(t, 0o777, c.UnixSocketMode)
	require.Equal(t, AuthMD5, c.AuthType)
	require.Equal(t, PoolModeSession, c.PoolMode)
	require.Equal(t, 20, c.DefaultPoolSize)
	require.Equal(t, 100, c.MaxClientConn)
	require.Equal(t, "DISCARD ALL", c.ServerResetQuery)
	require.Equal(t, CheckQueryEmpty, c.ServerCheckQuery)
	require.Equal(t, 30*time.Second, c.ServerCheckDelay)
	require.Equal(t, time.Hour, c.ServerLifetime)
	require.Equal(t, 600*time.Second, c.ServerIdleTimeout)
	require.Equal(t, 15*time.Second, c.ServerConnectTimeout)
	require.Equal(t, 15*time.Second, c.ServerLoginRetry)
	require.Equal(t, 120*time.Second, c.QueryWaitTimeout)
	require.Equal(t, 60*time.Second, c.ClientLoginTimeout)
	require.Equal(t, 10*time.Second, c.CancelWaitTimeout)
	require.Equal(t, 5*time.Second, c.ReservePoolTimeout)
	require.Equal(t, 2147483647, c.MaxPacketSize)
	require.Equal(t, 200, c.MaxPreparedStatements)
	require.Empty(t, c.IgnoreStartupParameters)
	require.Equal(t, []string{"IntervalStyle"}, c.TrackExtraParameters)
	require.True(t, c.LogConnections)
	require.True(t, c.LogDisconnections)
	require.True(t, c.LogPoolerErrors)
	require.True(t, c.TCPKeepalive)
	require.Equal(t, "disable", c.ClientTLS.SSLMode)
	require.Equal(t, "prefer", c.ServerTLS.SSLMode)
	require.Equal(t, "secure", c.ServerTLS.Protocols)
	require.Equal(t, "cache", c.PreparedStatementMode)
	require.Equal(t, 5, c.DirectPoolSize)
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.NotNil(t, c.Databases)
	require.NotNil(t, c.Users)
	require.NoError(t, c.Validate())
}

func TestSet(t *testing.T) {
	tests := []struct {
		key, value string
		check      func(t *testing.T, c *Config)
		wantErr    string
		sentinel   error
	}{
		{key: "pool_mode", value: "transaction", check: func(t *testing.T, c *Config) { require.Equal(t, PoolModeTransaction, c.PoolMode) }},
		{key: "pool_mode", value: "Statement", check: func(t *testing.T, c *Config) { require.Equal(t, PoolModeStatement, c.PoolMode) }},
		{key: "POOL_MODE", value: "statement", wantErr: `unknown setting: POOL_MODE (names are lower case: "pool_mode")`, sentinel: ErrUnknownSetting},
		{key: "default_pool_size", value: "42", check: func(t *testing.T, c *Config) { require.Equal(t, 42, c.DefaultPoolSize) }},
		{key: "query_timeout", value: "1.5", check: func(t *testing.T, c *Config) { require.Equal(t, 1500*time.Millisecond, c.QueryTimeout) }},
		{key: "server_lifetime", value: "5min", check: func(t *testing.T, c *Config) { require.Equal(t, 5*time.Minute, c.ServerLifetime) }},
		{key: "admin_users", value: "a, b,,c", check: func(t *testing.T, c *Config) { require.Equal(t, []string{"a", "b", "c"}, c.AdminUsers) }},
		{key: "client_tls_sslmode", value: "REQUIRE", check: func(t *testing.T, c *Config) { require.Equal(t, "require", c.ClientTLS.SSLMode) }},
		{key: "server_tls_ca_file", value: "/etc/ca.pem", check: func(t *testing.T, c *Config) { require.Equal(t, "/etc/ca.pem", c.ServerTLS.CAFile) }},
		{key: "prepared_statement_mode", value: "unnamed", check: func(t *testing.T, c *Config) { require.Equal(t, "unnamed", c.PreparedStatementMode) }},
		{key: "server_check_query", value: "", check: func(t *testing.T, c *Config) {
			_, enabled := c.CheckQuery()
			require.False(t, enabled)
		}},
		{key: "listen_port", value: "abc", wantErr: `listen_port: "abc" is not an integer`},
		{key: "listen_port", value: "70000", wantErr: `listen_port: 70000 is out of range (1..65535)`},
		{key: "prepared_statement_mode", value: "always", wantErr: `prepared_statement_mode: "always" is not one of cache, unnamed`},
		{key: "auth_type", value: "ldap", wantErr: `auth_type: auth_type ldap is not supported by pgmux`},
		{key: "syslog", value: "1", wantErr: "setting is not supported by pgmux: syslog", sentinel: ErrUnsupportedSetting},
		{key: "bogus", value: "1", wantErr: "unknown setting: bogus", sentinel: ErrUnknownSetting},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			c := Default()
			before := Dump(c)
			err := Set(c, tt.key, tt.value)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				if tt.sentinel != nil {
					require.True(t, errors.Is(err, tt.sentinel))
				}
				require.Equal(t, before, Dump(c), "a failed Set must not change the config")
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestReloadable(t *testing.T) {
	for _, k := range []string{"listen_addr", "listen_port", "unix_socket_dir", "pidfile", "metrics_addr", "syslog", "bogus",
		"DEFAULT_POOL_SIZE"} { // no such setting: names are case-sensitive
		require.False(t, Reloadable(k), k)
	}
	for _, k := range []string{"pool_mode", "default_pool_size", "auth_file", "server_lifetime", "shutdown_timeout"} {
		require.True(t, Reloadable(k), k)
	}
}

func TestDumpAndDescribe(t *testing.T) {
	c := Default()
	require.NoError(t, Set(c, "listen_addr", "127.0.0.1,::1"))
	require.NoError(t, Set(c, "reserve_pool_timeout", "0.5"))
	d := Dump(c)
	require.Len(t, d, len(settings))
	require.Equal(t, [2]string{"listen_addr", "127.0.0.1,::1"}, d[0])
	got := map[string]string{}
	for _, kv := range d {
		got[kv[0]] = kv[1]
	}
	require.Equal(t, "0.5", got["reserve_pool_timeout"])
	require.Equal(t, "0777", got["unix_socket_mode"])
	require.Equal(t, "session", got["pool_mode"])
	require.Equal(t, "1", got["log_connections"])

	info := Describe(c)
	require.Equal(t, "admin_users", info[0].Name, "PgBouncer's order: by name")
	require.Equal(t, "", info[0].Default)
	require.True(t, info[0].Reloadable)
}

// TestDescribeListsEveryPgBouncerKey: Describe, SHOW CONFIG's rows, has every key of
// PgBouncer 1.25 in PgBouncer's order with its default and changeable (the ones pgmux
// ignores included), then pgmux's own keys; an ignored key holds the value the file gives.
func TestDescribeListsEveryPgBouncerKey(t *testing.T) {
	data, err := os.ReadFile("testdata/pgbouncer-1.25-settings.tsv")
	require.NoError(t, err)
	var order []string
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i > 0 {
			order = append(order, strings.Split(line, "\t")[0])
		}
	}
	ref := readSettingsTSV(t)
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(ini, []byte("[databases]\n[pgbouncer]\nlog_stats = 0\nsyslog_ident = 'pgmux'\n"), 0o600))
	c, err := Load(ini)
	require.NoError(t, err)
	require.Len(t, c.Warnings, 2)
	require.Equal(t, map[string]string{"log_stats": "0", "syslog_ident": "pgmux"}, c.Ignored)
	require.Equal(t, c.Ignored, c.Clone().Ignored)

	info := Describe(c)
	require.Len(t, info, len(settings)+len(ignoredSettings), "each key once")
	for i, k := range order {
		s := info[i]
		require.Equal(t, k, s.Name, "row %d", i)
		want := ref[k][0]
		if ex, ok := tsvDefaultExceptions[k]; ok {
			want = ex
		}
		require.Equal(t, want, s.Default, k)
		require.Equal(t, unsupportedSettings[k], s.Ignored, k)
		require.Equal(t, ref[k][1] == "yes", s.Reloadable, k)
	}
	for _, s := range info[len(order):] {
		require.True(t, settingIndex[s.Name].own, "after PgBouncer's keys, pgmux's own: %s", s.Name)
	}
	values := map[string]string{}
	for _, s := range info {
		values[s.Name] = s.Value
	}
	require.Equal(t, "0", values["log_stats"])
	require.Equal(t, "pgmux", values["syslog_ident"])
	require.Equal(t, "0", values["syslog"], "an ignored key the file leaves out has PgBouncer's default")
	require.Equal(t, ini, values["conffile"])
}

func TestCheckQuery(t *testing.T) {
	c := Default()
	q, on := c.CheckQuery()
	require.True(t, on)
	require.Equal(t, "", q)
	c.ServerCheckQuery = "select 1"
	q, on = c.CheckQuery()
	require.True(t, on)
	require.Equal(t, "select 1", q)
}

func TestValidate(t *testing.T) {
	c := Default()
	c.AuthType = AuthHBA
	require.EqualError(t, c.Validate(), "auth_type is hba but auth_hba_file is not set")
	c = Default()
	c.ClientTLS.SSLMode = "require"
	require.ErrorContains(t, c.Validate(), "client_tls_key_file")
	c.ClientTLS.KeyFile, c.ClientTLS.CertFile = "k", "c"
	require.NoError(t, c.Validate())
	c = Default()
	c.AuthType = AuthCert
	require.ErrorContains(t, c.Validate(), "auth_type is cert")
	c.ClientTLS.SSLMode, c.ClientTLS.KeyFile, c.ClientTLS.CertFile = "verify-full", "k", "c"
	require.EqualError(t, c.Validate(), "auth_type is cert but client_tls_ca_file is not set: client certificates cannot be verified")
	c.ClientTLS.CAFile = "ca"
	require.NoError(t, c.Validate())
}

// TestIgnoredChangeableHolds: SHOW CONFIG's changeable for each PgBouncer setting pgmux
// ignores is PgBouncer's, and is true of pgmux: RELOAD takes a new value of one that says
// yes (log_stats) and keeps the value in force of one that says no (listen_backlog, or
// user, left out before) until a restart. pgmux said no for all 35 while a RELOAD
// changed every one's value: 27 of them PgBouncer says yes for (stats_period, syslog...),
// and the 8 it says no for changed all the same.
func TestIgnoredChangeableHolds(t *testing.T) {
	ref := readSettingsTSV(t)
	for _, s := range Describe(Default()) {
		if s.Ignored {
			require.Equal(t, ref[s.Name][1] == "yes", s.Reloadable, "changeable of %s", s.Name)
		}
	}
	dir := t.TempDir()
	load := func(body string) *Config {
		ini := filepath.Join(dir, "pgbouncer.ini")
		require.NoError(t, os.WriteFile(ini, []byte("[databases]\n[pgbouncer]\n"+body), 0o600))
		c, err := Load(ini)
		require.NoError(t, err)
		return c
	}
	old := load("log_stats = 0\nlisten_backlog = 64\n")
	next := load("log_stats = 2\nlisten_backlog = 256\nuser = nobody\n")
	loaded := next.Ignored
	pending, err := KeepRestartOnly(next, old)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"listen_backlog", "user"}, pending)
	require.Equal(t, map[string]string{"log_stats": "2", "listen_backlog": "64"}, next.Ignored)
	require.Equal(t, map[string]string{"log_stats": "2", "listen_backlog": "256", "user": "nobody"}, loaded,
		"the map as loaded is not changed")
	shown := map[string]SettingInfo{}
	for _, s := range Describe(next) {
		shown[s.Name] = s
	}
	require.Equal(t, "2", shown["log_stats"].Value)
	require.True(t, shown["log_stats"].Reloadable)
	require.Equal(t, "64", shown["listen_backlog"].Value)
	require.False(t, shown["listen_backlog"].Reloadable)
	require.Equal(t, "", shown["user"].Value)
}

// TestSetIgnored: SetIgnored stores a changeable ignored key's value as PgBouncer prints
// it back, in a copy of the map (a Clone shares it), and refuses a bad value, a key only
// a restart changes and one that is not ignored.
func TestSetIgnored(t *testing.T) {
	c := Default()
	c.Ignored = map[string]string{"syslog": "0"}
	shared := c.Clone()
	require.NoError(t, SetIgnored(c, "syslog", " 1"))
	require.NoError(t, SetIgnored(c, "dns_max_ttl", "1.5"))
	require.NoError(t, SetIgnored(c, "syslog_ident", " x "))
	require.Equal(t, map[string]string{"syslog": "1", "dns_max_ttl": "1.5", "syslog_ident": " x "}, c.Ignored)
	require.Equal(t, map[string]string{"syslog": "0"}, shared.Ignored, "the clone's map is not changed")
	require.ErrorContains(t, SetIgnored(c, "syslog", "on"), `syslog: "on" is not an integer`)
	require.ErrorIs(t, SetIgnored(c, "listen_backlog", "1"), ErrUnsupportedSetting)
	require.ErrorContains(t, SetIgnored(c, "default_pool_size", "1"), "not a PgBouncer setting pgmux ignores")
	require.Equal(t, "1", c.Ignored["syslog"])
}
