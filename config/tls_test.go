package config

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTLSVersions reads *_tls_protocols values as PgBouncer does.
func TestTLSVersions(t *testing.T) {
	for _, tc := range []struct {
		v      string
		lo, hi uint16
	}{
		{"", tls.VersionTLS12, tls.VersionTLS13},
		{"secure", tls.VersionTLS12, tls.VersionTLS13},
		{"default", tls.VersionTLS12, tls.VersionTLS13},
		{"all", tls.VersionTLS10, tls.VersionTLS13},
		{"legacy", tls.VersionTLS10, tls.VersionTLS13},
		{"tlsv1.3", tls.VersionTLS13, tls.VersionTLS13},
		{"TLSv1.2", tls.VersionTLS12, tls.VersionTLS12},
		{"tlsv1.1,tlsv1.2", tls.VersionTLS11, tls.VersionTLS12},
		{"tlsv1.2:tlsv1.3", tls.VersionTLS12, tls.VersionTLS13},
		{"!tlsv1.0", tls.VersionTLS11, tls.VersionTLS13},
		{"all,!tlsv1.3", tls.VersionTLS10, tls.VersionTLS12},
		{"secure, tlsv1.1", tls.VersionTLS11, tls.VersionTLS13},
	} {
		lo, hi, err := TLSVersions(tc.v)
		require.NoError(t, err, tc.v)
		require.Equal(t, [2]uint16{tc.lo, tc.hi}, [2]uint16{lo, hi}, tc.v)
	}
	for _, v := range []string{"tlsv9", "ssl3", "tlsv1.0,tlsv1.3", "all,!tlsv1.1", "!all", "secure,!tlsv1.2,!tlsv1.3"} {
		_, _, err := TLSVersions(v)
		require.Error(t, err, v)
	}
}
