package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"0", 0, false},
		{"30", 30 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{".25", 250 * time.Millisecond, false},
		{" 15 ", 15 * time.Second, false},
		{"30s", 30 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"5min", 5 * time.Minute, false},
		{"5 min", 5 * time.Minute, false},
		{"1h", time.Hour, false},
		{"2d", 48 * time.Hour, false},
		{"100us", 100 * time.Microsecond, false},
		{"1h30m", 90 * time.Minute, false},
		{"1.5h", 90 * time.Minute, false},
		{"", 0, true},
		{"abc", 0, true},
		{"-1", 0, true},
		{"-5s", 0, true},
		{"5 parsecs", 0, true},
		{"1.2.3", 0, true},
		{"99999999999999999999999", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestFormatDuration(t *testing.T) {
	require.Equal(t, "0.5", formatDuration(500*time.Millisecond))
	require.Equal(t, "3600", formatDuration(time.Hour))
	require.Equal(t, "0", formatDuration(0))
}

func TestParseBool(t *testing.T) {
	for _, in := range []string{"1", "true", "YES", "on"} {
		b, err := parseBool(in)
		require.NoError(t, err, in)
		require.True(t, b, in)
	}
	for _, in := range []string{"0", "false", "no", "OFF"} {
		b, err := parseBool(in)
		require.NoError(t, err, in)
		require.False(t, b, in)
	}
	_, err := parseBool("2")
	require.EqualError(t, err, `"2" is not a boolean (use 0 or 1)`)
}

func TestParseListenAddrs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"*", []string{"*"}, false},
		{"", nil, false},
		{"127.0.0.1", []string{"127.0.0.1"}, false},
		{"::1", []string{"::1"}, false},
		{"[::1]", []string{"::1"}, false},
		{"127.0.0.1, ::1,fd00::5", []string{"127.0.0.1", "::1", "fd00::5"}, false},
		{"localhost,db-proxy.internal", []string{"localhost", "db-proxy.internal"}, false},
		{"not an address", nil, true},
		{"host:6432", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseListenAddrs(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseMode(t *testing.T) {
	m, err := parseMode("0777")
	require.NoError(t, err)
	require.Equal(t, 0o777, m)
	m, err = parseMode("700")
	require.NoError(t, err)
	require.Equal(t, 0o700, m)
	_, err = parseMode("0999")
	require.Error(t, err)
}

func TestEnums(t *testing.T) {
	for _, m := range []PoolMode{PoolModeSession, PoolModeTransaction, PoolModeStatement} {
		got, err := ParsePoolMode(m.String())
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	for _, a := range []AuthType{AuthTrust, AuthPlain, AuthMD5, AuthSCRAM, AuthAny, AuthCert, AuthHBA} {
		got, err := ParseAuthType(a.String())
		require.NoError(t, err)
		require.Equal(t, a, got)
	}
	_, err := ParseAuthType("pam")
	require.EqualError(t, err, "auth_type pam is not supported by pgmux")
	_, err = ParsePoolMode("")
	require.Error(t, err)
	require.Equal(t, "PoolMode(9)", PoolMode(9).String())
}
