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

// TestTLSCiphers reads *_tls_ciphers values: PgBouncer's shortcuts and OpenSSL cipher
// strings, into the TLS 1.0-1.2 suites Go is to use (nil: Go's defaults).
func TestTLSCiphers(t *testing.T) {
	const (
		ecdsa128 = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
		ecdsa256 = tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
		rsa128   = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		rsa256   = tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
		ecdsaCC  = tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
		rsaCC    = tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
	)
	for _, tc := range []struct {
		v    string
		want []uint16
	}{
		{"ECDHE-RSA-AES128-GCM-SHA256", []uint16{rsa128}},
		{"ecdhe-rsa-aes128-gcm-sha256", []uint16{rsa128}},
		{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", []uint16{rsa128}},
		{"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384", []uint16{ecdsa256, rsa128}},
		{"ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384", []uint16{ecdsa256, rsa128}},
		{"ECDHE-RSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384", []uint16{ecdsa256, rsa128}},
		{"ECDHE+AESGCM", []uint16{ecdsa128, ecdsa256, rsa128, rsa256}},
		{"ECDHE+AESGCM:!AES256", []uint16{ecdsa128, rsa128}},
		{"ECDHE+AESGCM:-AES256", []uint16{ecdsa128, rsa128}},
		{"ECDHE+AESGCM:-AES256:ECDHE-RSA-AES256-GCM-SHA384", []uint16{ecdsa128, rsa128, rsa256}}, // - may be added again
		{"ECDHE+AESGCM:!AES256:ECDHE-RSA-AES256-GCM-SHA384", []uint16{ecdsa128, rsa128}},         // ! may not
		{"ECDHE+AESGCM:+AES128", []uint16{ecdsa128, ecdsa256, rsa128, rsa256}},                   // + orders, does not add
		{"aECDSA+AEAD", []uint16{ecdsa128, ecdsa256, ecdsaCC}},
		{"CHACHA20", []uint16{ecdsaCC, rsaCC}},
		{"HIGH:!aNULL:!MD5:!kRSA:!SHA1:!CHACHA20:!AES128:!SHA256", []uint16{ecdsa256, rsa256}},
		{"kRSA+AESGCM", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}},
		{"RSA+AES256+SSLv3", []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA}},
		{"MEDIUM+kRSA", []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_RC4_128_SHA}},
		{"MEDIUM:@SECLEVEL=2", []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}},
		{"ECDHE+SHA256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256}},
		{"TLSv1.2+ECDHE+aRSA:!SHA256:@STRENGTH", []uint16{rsa128, rsa256, rsaCC}},
		{"TLSv1+aECDSA:!AES256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}},
	} {
		got, err := TLSCiphers(tc.v)
		require.NoError(t, err, tc.v)
		require.ElementsMatch(t, tc.want, got, tc.v)
	}
	t.Run("shortcuts", func(t *testing.T) {
		for _, v := range []string{"", "default", "DEFAULT", "secure", "fast", "normal", " Normal "} {
			got, err := TLSCiphers(v)
			require.NoError(t, err, v)
			require.Nil(t, got, "%q is Go's defaults", v)
		}
		all, err := TLSCiphers("all")
		require.NoError(t, err)
		require.Len(t, all, len(cipherSuites), "all is every suite Go implements")
		insecure, err := TLSCiphers("insecure")
		require.NoError(t, err)
		require.ElementsMatch(t, all, insecure)
		compat, err := TLSCiphers("compat")
		require.NoError(t, err)
		require.Len(t, compat, len(cipherSuites)-5, "compat: HIGH, without 3DES (2 suites) and RC4 (3)")
		legacy, err := TLSCiphers("legacy")
		require.NoError(t, err)
		require.ElementsMatch(t, all, legacy, "legacy: HIGH and MEDIUM")
		def, err := TLSCiphers("DEFAULT:!RC4") // the alias, in a list
		require.NoError(t, err)
		require.Len(t, def, 10)
		for _, id := range def {
			require.Contains(t, tls.CipherSuiteName(id), "ECDHE", "Go's defaults are forward-secret")
		}
		rest, err := TLSCiphers("COMPLEMENTOFDEFAULT")
		require.NoError(t, err)
		require.Len(t, rest, len(cipherSuites)-10)
	})
	t.Run("refused", func(t *testing.T) {
		for _, v := range []string{
			"NOPE", "ECDHE-RSA-AES128-GCM-SHA256:NOPE", "HIGH+", "!", "HIGH::!aNULL+",
			"aNULL", "!ALL", "HIGH:!HIGH", "ECDHE+kRSA", "DHE-RSA-AES128-GCM-SHA256", "TLSv1.3",
			"TLS_AES_128_GCM_SHA256", "CAMELLIA:SEED", "HIGH:@SECLEVEL=9", "HIGH:@FOO", "+AES128", "HIGH:!CBC3", "HIGH:!AES:!CHACHA20",
		} {
			_, err := TLSCiphers(v)
			require.Error(t, err, v)
		}
	})
}

// TestCipherSuitesComplete: the table names every TLS 1.0-1.2 suite crypto/tls
// implements, under its IANA name, and Go's defaults are among its secure ones.
func TestCipherSuitesComplete(t *testing.T) {
	secure := map[uint16]bool{}
	var goSuites []uint16
	for i, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			if cs.SupportedVersions[0] > tls.VersionTLS12 {
				continue // TLS 1.3's
			}
			goSuites = append(goSuites, cs.ID)
			secure[cs.ID] = i == 0
		}
	}
	var ours []uint16
	for _, cs := range cipherSuites {
		ours = append(ours, cs.id)
		if cs.attrs&goDefault != 0 {
			require.True(t, secure[cs.id], cs.name)
		}
	}
	require.ElementsMatch(t, goSuites, ours)
}

// TestTLSCiphersValidated: a *_tls_ciphers value that names no suite pgmux knows is a
// configuration error, naming the setting.
func TestTLSCiphersValidated(t *testing.T) {
	for _, key := range []string{"client_tls_ciphers", "server_tls_ciphers"} {
		_, _, err := loadString(t, "[databases]\n[pgbouncer]\nlisten_port = 6432\n"+key+" = HIGH:NOT-A-CIPHER\n")
		require.ErrorContains(t, err, key)
		require.ErrorContains(t, err, "NOT-A-CIPHER")
	}
}
