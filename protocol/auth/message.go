package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrProtocolViolation is wrapped by every error about a malformed or
// unexpected SCRAM message (SQLSTATE 08P01), but for the two kinds below.
var ErrProtocolViolation = errors.New("auth: SCRAM protocol violation")

// ErrNotSupported is wrapped by the errors about a well-formed client message
// asking for what PostgreSQL does not support either: an authorization
// identity, a mandatory extension (SQLSTATE 0A000, as PostgreSQL's).
var ErrNotSupported = errors.New("auth: SCRAM feature not supported")

// ErrChannelBinding is wrapped by the channel-binding failures PostgreSQL
// reports as refused authorization rather than as malformed messages: binding
// data that is not this connection's, and a client able to bind that believes
// the server cannot (a downgrade) (SQLSTATE 28000).
var ErrChannelBinding = errors.New("auth: SCRAM channel binding failed")

// ErrPasswordMismatch reports a wrong password: the client's proof did not
// verify (SQLSTATE 28P01).
var ErrPasswordMismatch = errors.New("auth: password authentication failed")

// cbNameTLSServerEndPoint is the only channel-binding type PostgreSQL uses.
const cbNameTLSServerEndPoint = "tls-server-end-point"

// nonceLen is the number of random bytes in a nonce before base64, as in
// PostgreSQL.
const nonceLen = 18

// violation returns an ErrProtocolViolation with detail.
func violation(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocolViolation}, args...)...)
}

// unsupported returns an ErrNotSupported with detail.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotSupported}, args...)...)
}

// attr is one "k=value" attribute of a SCRAM message.
type attr struct {
	key byte
	val string
}

// parseAttrs splits a SCRAM message (or its bare part) into attributes.
// Every attribute must be a letter, '=' and a value free of ',' (values
// that need a ',' encode it), and the message must be UTF-8 without NUL.
func parseAttrs(msg string) ([]attr, error) {
	if msg == "" {
		return nil, violation("empty message")
	}
	if !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
		return nil, violation("message is not UTF-8 text")
	}
	parts := strings.Split(msg, ",")
	attrs := make([]attr, 0, len(parts))
	for _, p := range parts {
		if len(p) < 2 || !isAlpha(p[0]) || p[1] != '=' {
			return nil, violation("malformed attribute %q", truncate(p))
		}
		attrs = append(attrs, attr{key: p[0], val: p[2:]})
	}
	return attrs, nil
}

// expect returns the value of attrs[i] if it exists and has key k.
func expect(attrs []attr, i int, k byte) (string, error) {
	if i >= len(attrs) {
		return "", violation("missing attribute %q", k)
	}
	if attrs[i].key != k {
		return "", violation("expected attribute %q, got %q", k, attrs[i].key)
	}
	return attrs[i].val, nil
}

// isAlpha reports whether c is an ASCII letter.
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isPrintableNonce reports whether s is a valid, non-empty nonce: printable
// ASCII except ','.
func isPrintableNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == ',' {
			return false
		}
	}
	return true
}

// newNonce returns a fresh random nonce.
func newNonce() string {
	b := make([]byte, nonceLen)
	_, _ = rand.Read(b) // never fails since Go 1.24; it crashes instead
	return b64.EncodeToString(b)
}

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	cbFlag    byte   // 'n', 'y' or 'p'
	gs2Header string // e.g. "n,," or "p=tls-server-end-point,,"
	bare      string // client-first-message-bare, part of AuthMessage
	nonce     string // client nonce
}

// parseClientFirst parses "gs2-header client-first-message-bare". The user
// name is ignored, as PostgreSQL takes it from the startup packet.
func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	flag, rest, ok1 := strings.Cut(msg, ",")
	authzid, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return cf, violation("client-first-message lacks a GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p="):
		if flag[2:] != cbNameTLSServerEndPoint {
			return cf, violation("unsupported channel binding type %q", truncate(flag[2:]))
		}
		cf.cbFlag = 'p'
	default:
		return cf, violation("malformed GS2 channel binding flag %q", truncate(flag))
	}
	if authzid != "" {
		return cf, unsupported("authorization identity is not supported")
	}
	cf.gs2Header = flag + ",,"
	cf.bare = bare
	attrs, err := parseAttrs(bare)
	if err != nil {
		return cf, err
	}
	if attrs[0].key == 'm' {
		return cf, unsupported("client requires an unsupported SCRAM extension")
	}
	if _, err := expect(attrs, 0, 'n'); err != nil {
		return cf, err
	}
	if cf.nonce, err = expect(attrs, 1, 'r'); err != nil {
		return cf, err
	}
	if !isPrintableNonce(cf.nonce) {
		return cf, violation("client nonce is not printable")
	}
	return cf, nil // further attributes are extensions, ignored
}

// serverFirst is a parsed server-first-message.
type serverFirst struct {
	nonce      string // client nonce + server nonce
	salt       []byte
	iterations int
}

// parseServerFirst parses "r=<nonce>,s=<salt>,i=<iterations>" and checks
// that the nonce extends clientNonce.
func parseServerFirst(msg, clientNonce string) (serverFirst, error) {
	var sf serverFirst
	attrs, err := parseAttrs(msg)
	if err != nil {
		return sf, err
	}
	if attrs[0].key == 'm' {
		return sf, violation("server requires an unsupported SCRAM extension")
	}
	if sf.nonce, err = expect(attrs, 0, 'r'); err != nil {
		return sf, err
	}
	if !isPrintableNonce(sf.nonce) || len(sf.nonce) <= len(clientNonce) ||
		!strings.HasPrefix(sf.nonce, clientNonce) {
		return sf, violation("server nonce does not extend the client nonce")
	}
	salt, err := expect(attrs, 1, 's')
	if err != nil {
		return sf, err
	}
	if sf.salt, err = decodeB64(salt); err != nil || len(sf.salt) == 0 {
		return sf, violation("salt is not non-empty base64")
	}
	iter, err := expect(attrs, 2, 'i')
	if err != nil {
		return sf, err
	}
	if sf.iterations, err = parseIterations(iter); err != nil {
		return sf, violation("%v", err)
	}
	return sf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding []byte // decoded c=
	nonce          string
	withoutProof   string // client-final-message-without-proof
	proof          []byte
}

// parseClientFinal parses "c=<cb>,r=<nonce>[,ext...],p=<proof>".
func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	attrs, err := parseAttrs(msg)
	if err != nil {
		return cf, err
	}
	cb, err := expect(attrs, 0, 'c')
	if err != nil {
		return cf, err
	}
	if cf.channelBinding, err = decodeB64(cb); err != nil {
		return cf, violation("channel binding is not base64")
	}
	if cf.nonce, err = expect(attrs, 1, 'r'); err != nil {
		return cf, err
	}
	last := len(attrs) - 1
	proof, err := expect(attrs, last, 'p')
	if err != nil || last < 2 {
		return cf, violation("client-final-message does not end with a proof")
	}
	if cf.proof, err = decodeKey(proof); err != nil {
		return cf, violation("client proof: %v", err)
	}
	cf.withoutProof = msg[:len(msg)-len(",p=")-len(proof)]
	return cf, nil
}
