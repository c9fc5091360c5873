package config

import (
	"fmt"
	"strings"
)

var poolModeNames = [...]string{
	PoolModeUnset:       "",
	PoolModeSession:     "session",
	PoolModeTransaction: "transaction",
	PoolModeStatement:   "statement",
}

// String returns the pgbouncer.ini spelling ("session", "transaction", "statement"), or ""
// for PoolModeUnset.
func (m PoolMode) String() string {
	if int(m) < len(poolModeNames) {
		return poolModeNames[m]
	}
	return fmt.Sprintf("PoolMode(%d)", int(m))
}

// ParsePoolMode parses a pool_mode value, case-insensitively. The empty string is an error.
func ParsePoolMode(s string) (PoolMode, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for i, name := range poolModeNames {
		if name != "" && name == v {
			return PoolMode(i), nil
		}
	}
	return PoolModeUnset, fmt.Errorf("%q is not a pool mode (session, transaction or statement)", s)
}

var authTypeNames = [...]string{
	AuthTrust: "trust",
	AuthPlain: "plain",
	AuthMD5:   "md5",
	AuthSCRAM: "scram-sha-256",
	AuthAny:   "any",
	AuthCert:  "cert",
	AuthHBA:   "hba",
}

// String returns the pgbouncer.ini spelling of the auth type, e.g. "scram-sha-256".
func (a AuthType) String() string {
	if a >= 0 && int(a) < len(authTypeNames) {
		return authTypeNames[a]
	}
	return fmt.Sprintf("AuthType(%d)", int(a))
}

// ParseAuthType parses an auth_type value, case-insensitively. PgBouncer's "pam" and
// "ldap" are recognised and refused, since pgmux does not implement them.
func ParseAuthType(s string) (AuthType, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for i, name := range authTypeNames {
		if name == v {
			return AuthType(i), nil
		}
	}
	if v == "pam" || v == "ldap" {
		return AuthTrust, fmt.Errorf("auth_type %s is not supported by pgmux", v)
	}
	return AuthTrust, fmt.Errorf("%q is not an auth type (trust, plain, md5, scram-sha-256, any, cert or hba)", s)
}
