package config

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// tlsVersionBits are the versions client_tls_protocols and server_tls_protocols name,
// oldest first, one bit each.
var tlsVersionBits = []struct {
	name    string
	version uint16
}{
	{"tlsv1.0", tls.VersionTLS10}, {"tlsv1.1", tls.VersionTLS11},
	{"tlsv1.2", tls.VersionTLS12}, {"tlsv1.3", tls.VersionTLS13},
}

const (
	tlsAll    = 0b1111
	tlsSecure = 0b1100 // TLS 1.2 and 1.3: PgBouncer's default
)

// TLSVersions parses a *_tls_protocols value as PgBouncer (libtls) reads it: a list
// separated by commas or colons of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, tlsv1 (all of
// them), all or legacy (the same), secure or default (1.2 and 1.3); a "!" before a name
// takes it away (from all when it comes first). Go speaks a range of versions, so the
// set must have no gap. An empty value is secure.
func TLSVersions(v string) (lo, hi uint16, err error) {
	var set uint8
	if strings.TrimSpace(v) == "" {
		set = tlsSecure
	}
	for i, tok := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ':' }) {
		tok = strings.ToLower(strings.TrimSpace(tok))
		negate := strings.HasPrefix(tok, "!")
		if negate {
			tok = tok[1:]
			if i == 0 {
				set = tlsAll
			}
		}
		bits, ok := tlsVersionSet(tok)
		if !ok {
			return 0, 0, fmt.Errorf("%q is not a TLS protocol (tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure)", tok)
		}
		if negate {
			set &^= bits
		} else {
			set |= bits
		}
	}
	for i, b := range tlsVersionBits {
		if set&(1<<i) == 0 {
			continue
		}
		if lo == 0 {
			lo = b.version
		} else if hi != b.version-1 {
			return 0, 0, fmt.Errorf("%q leaves a gap between TLS versions: pgmux speaks a range", v)
		}
		hi = b.version
	}
	if lo == 0 {
		return 0, 0, fmt.Errorf("%q allows no TLS version", v)
	}
	return lo, hi, nil
}

// tlsVersionSet is the set of versions one name of a protocols list stands for.
func tlsVersionSet(name string) (uint8, bool) {
	switch name {
	case "all", "legacy", "tlsv1":
		return tlsAll, true
	case "secure", "default":
		return tlsSecure, true
	}
	for i, b := range tlsVersionBits {
		if name == b.name {
			return 1 << i, true
		}
	}
	return 0, false
}

// validateTLS checks the client_tls_* and server_tls_* rules that involve more than one
// value, as PgBouncer's TLS setup does.
func (c *Config) validateTLS() error {
	if c.AuthType == AuthCert && c.ClientTLS.SSLMode == "disable" {
		return fmt.Errorf("auth_type is cert but client_tls_sslmode is disable")
	}
	if c.AuthType == AuthCert && c.ClientTLS.CAFile == "" {
		return fmt.Errorf("auth_type is cert but client_tls_ca_file is not set: client certificates cannot be verified")
	}
	if c.ClientTLS.SSLMode == "verify-full" && c.ClientTLS.CAFile == "" {
		return fmt.Errorf("client_tls_sslmode is verify-full but client_tls_ca_file is not set: client certificates cannot be verified")
	}
	if c.ClientTLS.SSLMode != "disable" && (c.ClientTLS.KeyFile == "" || c.ClientTLS.CertFile == "") {
		return fmt.Errorf("client_tls_sslmode is %s but client_tls_key_file and client_tls_cert_file are not both set", c.ClientTLS.SSLMode)
	}
	if (c.ServerTLS.KeyFile == "") != (c.ServerTLS.CertFile == "") {
		return fmt.Errorf("server_tls_key_file and server_tls_cert_file go together: only one is set")
	}
	for _, side := range []struct {
		prefix string
		t      *TLSSettings
	}{{"client_tls", &c.ClientTLS}, {"server_tls", &c.ServerTLS}} {
		if _, _, err := TLSVersions(side.t.Protocols); err != nil {
			return fmt.Errorf("%s_protocols: %w", side.prefix, err)
		}
		if _, err := TLSCiphers(side.t.Ciphers); err != nil {
			return fmt.Errorf("%s_ciphers: %w", side.prefix, err)
		}
	}
	return nil
}
