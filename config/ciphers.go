package config

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
)

// cipherAttr is what a TLS 1.0-1.2 cipher suite is made of, one bit each, as OpenSSL's
// cipher families name it.
type cipherAttr uint32

const (
	kRSA      cipherAttr = 1 << iota // RSA key exchange
	kECDHE                           // ephemeral ECDH key exchange
	aRSA                             // RSA certificate
	aECDSA                           // ECDSA certificate
	encAES128                        // AES-128, CBC or GCM
	encAES256                        // AES-256, CBC or GCM
	encCHACHA                        // ChaCha20-Poly1305
	enc3DES                          // triple DES
	encRC4                           // RC4
	modeGCM                          // AES in GCM mode
	macSHA1                          // HMAC-SHA1
	macSHA256                        // HMAC-SHA256 (a GCM suite's SHA256 or SHA384 is its PRF's: it is AEAD)
	macAEAD                          // an AEAD cipher: no separate MAC
	minSSLv3                         // usable from SSL 3.0 on (OpenSSL's SSLv3 family)
	minTLS10                         // usable from TLS 1.0 on
	minTLS12                         // needs TLS 1.2
	goDefault                        // in Go's default list

	attrHigh   = encAES128 | encAES256 | encCHACHA
	attrMedium = enc3DES | encRC4
	attrAll    = kRSA | kECDHE // every suite has one key exchange
)

// cipherSuites are the TLS 1.0-1.2 cipher suites Go implements, by OpenSSL's names.
// TestCipherSuitesComplete checks the table against crypto/tls.
var cipherSuites = []struct {
	name  string
	id    uint16
	attrs cipherAttr
}{
	{"ECDHE-ECDSA-AES128-GCM-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, kECDHE | aECDSA | encAES128 | modeGCM | macAEAD | minTLS12 | goDefault},
	{"ECDHE-ECDSA-AES256-GCM-SHA384", tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, kECDHE | aECDSA | encAES256 | modeGCM | macAEAD | minTLS12 | goDefault},
	{"ECDHE-RSA-AES128-GCM-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, kECDHE | aRSA | encAES128 | modeGCM | macAEAD | minTLS12 | goDefault},
	{"ECDHE-RSA-AES256-GCM-SHA384", tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, kECDHE | aRSA | encAES256 | modeGCM | macAEAD | minTLS12 | goDefault},
	{"ECDHE-ECDSA-CHACHA20-POLY1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, kECDHE | aECDSA | encCHACHA | macAEAD | minTLS12 | goDefault},
	{"ECDHE-RSA-CHACHA20-POLY1305", tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, kECDHE | aRSA | encCHACHA | macAEAD | minTLS12 | goDefault},
	{"ECDHE-ECDSA-AES128-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, kECDHE | aECDSA | encAES128 | macSHA1 | minTLS10 | goDefault},
	{"ECDHE-ECDSA-AES256-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, kECDHE | aECDSA | encAES256 | macSHA1 | minTLS10 | goDefault},
	{"ECDHE-RSA-AES128-SHA", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, kECDHE | aRSA | encAES128 | macSHA1 | minTLS10 | goDefault},
	{"ECDHE-RSA-AES256-SHA", tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, kECDHE | aRSA | encAES256 | macSHA1 | minTLS10 | goDefault},
	{"ECDHE-ECDSA-AES128-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, kECDHE | aECDSA | encAES128 | macSHA256 | minTLS12},
	{"ECDHE-RSA-AES128-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, kECDHE | aRSA | encAES128 | macSHA256 | minTLS12},
	{"ECDHE-RSA-DES-CBC3-SHA", tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, kECDHE | aRSA | enc3DES | macSHA1 | minTLS10},
	{"ECDHE-ECDSA-RC4-SHA", tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, kECDHE | aECDSA | encRC4 | macSHA1 | minTLS10},
	{"ECDHE-RSA-RC4-SHA", tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, kECDHE | aRSA | encRC4 | macSHA1 | minTLS10},
	{"AES128-GCM-SHA256", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, kRSA | aRSA | encAES128 | modeGCM | macAEAD | minTLS12},
	{"AES256-GCM-SHA384", tls.TLS_RSA_WITH_AES_256_GCM_SHA384, kRSA | aRSA | encAES256 | modeGCM | macAEAD | minTLS12},
	{"AES128-SHA256", tls.TLS_RSA_WITH_AES_128_CBC_SHA256, kRSA | aRSA | encAES128 | macSHA256 | minTLS12},
	{"AES128-SHA", tls.TLS_RSA_WITH_AES_128_CBC_SHA, kRSA | aRSA | encAES128 | macSHA1 | minSSLv3},
	{"AES256-SHA", tls.TLS_RSA_WITH_AES_256_CBC_SHA, kRSA | aRSA | encAES256 | macSHA1 | minSSLv3},
	{"DES-CBC3-SHA", tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, kRSA | aRSA | enc3DES | macSHA1 | minSSLv3},
	{"RC4-SHA", tls.TLS_RSA_WITH_RC4_128_SHA, kRSA | aRSA | encRC4 | macSHA1 | minSSLv3},
}

// cipherFamilies are OpenSSL's cipher-string aliases (ciphers(1)): a suite is in one when
// it has any of attrs (none of them, for not). Families of what Go does not implement
// (DHE, PSK, CAMELLIA, NULL encryption or authentication...) are known and empty, so
// that the usual exclusions ("!aNULL:!MD5") read as they do for OpenSSL.
var cipherFamilies = []struct {
	names []string
	attrs cipherAttr
	not   bool
}{
	{[]string{"ALL"}, attrAll, false},
	{[]string{"DEFAULT"}, goDefault, false},
	{[]string{"COMPLEMENTOFDEFAULT"}, goDefault, true},
	{[]string{"HIGH"}, attrHigh, false},
	{[]string{"MEDIUM"}, attrMedium, false},
	{[]string{"kRSA", "RSA"}, kRSA, false},
	{[]string{"aRSA"}, aRSA, false},
	{[]string{"kECDHE", "kEECDH", "ECDHE", "EECDH", "ECDH"}, kECDHE, false},
	{[]string{"aECDSA", "ECDSA"}, aECDSA, false},
	{[]string{"AES128"}, encAES128, false},
	{[]string{"AES256"}, encAES256, false},
	{[]string{"AES"}, encAES128 | encAES256, false},
	{[]string{"AESGCM"}, modeGCM, false},
	{[]string{"CHACHA20"}, encCHACHA, false},
	{[]string{"3DES"}, enc3DES, false},
	{[]string{"RC4"}, encRC4, false},
	{[]string{"AEAD"}, macAEAD, false},
	{[]string{"SHA1", "SHA"}, macSHA1, false},
	{[]string{"SHA256"}, macSHA256, false},
	{[]string{"SSLv3"}, minSSLv3, false},
	{[]string{"TLSv1", "TLSv1.0"}, minTLS10, false},
	{[]string{"TLSv1.2"}, minTLS12, false},
	{[]string{"TLSv1.3", // its suites are not chosen by this list
		"COMPLEMENTOFALL", "LOW", "EXPORT", "EXP", "eNULL", "NULL", "aNULL", "ADH", "AECDH",
		"kEDH", "kDHE", "EDH", "DHE", "DH", "kDHr", "kDHd", "aDH", "PSK", "kPSK", "kECDHEPSK",
		"kDHEPSK", "kRSAPSK", "aPSK", "SRP", "kSRP", "aSRP", "DSS", "aDSS", "CAMELLIA",
		"CAMELLIA128", "CAMELLIA256", "ARIA", "ARIA128", "ARIA256", "ARIAGCM", "SEED", "IDEA",
		"DES", "RC2", "MD5", "SHA384", "CCM", "AESCCM", "AESCCM8", "GOST", "kGOST", "aGOST"}, 0, false},
}

// cipherSet is a set of cipherSuites, bit i for cipherSuites[i].
type cipherSet uint32

// TLSCiphers parses a *_tls_ciphers value into the TLS 1.0-1.2 cipher suites to enable,
// nil for Go's defaults. PgBouncer's shortcuts come first, the whole value alike in any
// case: default, secure, fast and normal are the library's defaults (PgBouncer 1.25: the
// system's OpenSSL defaults; here Go's), compat is HIGH:!aNULL, legacy
// HIGH:MEDIUM:!aNULL, all and insecure every suite Go implements. Any other value is an
// OpenSSL cipher string: names and families separated by colons, commas or spaces; a
// family joined to others by "+" is their intersection (ECDHE+AESGCM); "!" before one
// takes its suites away for good, "-" takes them away until named again, "+" before one
// orders them last (Go chooses the order itself, so it changes nothing here); @STRENGTH
// is accepted, @SECLEVEL=n takes away what OpenSSL's level n forbids. Suite names are
// OpenSSL's (ECDHE-RSA-AES128-GCM-SHA256) or IANA's (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256).
// A name pgmux does not know, or a list that leaves no suite, is an error: OpenSSL skips
// unknown names, which hides typos.
//
// TLS 1.3 suites are not chosen here: Go does not let them be configured (PgBouncer's
// *_tls13_ciphers are accepted and ignored).
func TLSCiphers(v string) ([]uint16, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "default", "secure", "fast", "normal":
		return nil, nil
	case "compat":
		v = "HIGH:!aNULL"
	case "legacy":
		v = "HIGH:MEDIUM:!aNULL"
	case "all", "insecure":
		v = "ALL:!aNULL:!eNULL"
	}
	var have, banned cipherSet
	secLevel := 0
	for _, el := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == ';' }) {
		if strings.HasPrefix(el, "@") {
			lvl, err := cipherCommand(el)
			if err != nil {
				return nil, err
			}
			secLevel = max(secLevel, lvl)
			continue
		}
		op := el[0]
		if op == '!' || op == '-' || op == '+' {
			el = el[1:]
		}
		set, err := cipherMatch(el)
		if err != nil {
			return nil, err
		}
		switch op {
		case '!':
			have &^= set
			banned |= set
		case '-':
			have &^= set
		case '+': // the order: Go's own
		default:
			have |= set &^ banned
		}
	}
	have &^= secLevelForbids(secLevel)
	var ids []uint16
	for i, cs := range cipherSuites {
		if have&(1<<i) != 0 {
			ids = append(ids, cs.id)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%q leaves no TLS 1.2 cipher suite that pgmux implements", v)
	}
	return ids, nil
}

// cipherMatch is the set one element of a cipher string names: a suite, a family, or
// several joined by "+" (all of them at once).
func cipherMatch(el string) (cipherSet, error) {
	set := ^cipherSet(0)
	for _, part := range strings.Split(el, "+") {
		s, ok := cipherNamed(part)
		if !ok {
			return 0, fmt.Errorf("%q is not a TLS cipher suite or family pgmux knows "+
				"(OpenSSL names such as ECDHE-RSA-AES128-GCM-SHA256, HIGH, ECDHE, AESGCM, !aNULL; or default, compat, legacy, all)", part)
		}
		set &= s
	}
	return set, nil
}

// cipherNamed is the set a suite's or a family's name stands for, in any case.
func cipherNamed(name string) (cipherSet, bool) {
	if name == "" {
		return 0, false
	}
	for i, cs := range cipherSuites {
		if strings.EqualFold(name, cs.name) || strings.EqualFold(name, tls.CipherSuiteName(cs.id)) {
			return 1 << i, true
		}
	}
	for _, f := range cipherFamilies {
		for _, n := range f.names {
			if strings.EqualFold(name, n) {
				return cipherWith(f.attrs, f.not), true
			}
		}
	}
	return 0, false
}

// cipherWith is the set of suites with any of attrs (none of them, for not).
func cipherWith(attrs cipherAttr, not bool) cipherSet {
	var set cipherSet
	for i, cs := range cipherSuites {
		if (cs.attrs&attrs != 0) != not {
			set |= 1 << i
		}
	}
	return set
}

// cipherCommand reads an "@" element: @STRENGTH (an order, Go's own here) or
// @SECLEVEL=n, whose level it returns.
func cipherCommand(el string) (int, error) {
	if strings.EqualFold(el, "@STRENGTH") {
		return 0, nil
	}
	if n, ok := strings.CutPrefix(strings.ToUpper(el), "@SECLEVEL="); ok {
		if lvl, err := strconv.Atoi(n); err == nil && lvl >= 0 && lvl <= 5 {
			return lvl, nil
		}
	}
	return 0, fmt.Errorf("%q is not @STRENGTH or @SECLEVEL=0 to 5", el)
}

// secLevelForbids is what OpenSSL's security level lvl forbids of Go's suites: RC4 from
// 2; suites without forward secrecy and 3DES (112 bits) from 3; 128-bit ciphers and
// SHA-1 MACs from 4.
func secLevelForbids(lvl int) cipherSet {
	var attrs cipherAttr
	if lvl >= 2 {
		attrs |= encRC4
	}
	if lvl >= 3 {
		attrs |= kRSA | enc3DES
	}
	if lvl >= 4 {
		attrs |= encAES128 | macSHA1
	}
	return cipherWith(attrs, false)
}
