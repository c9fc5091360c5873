package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
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
	val []byte // a view of the message
}

// attrs is a scanned SCRAM message: how many attributes it has, the first few and the
// last, which is all the parsers read (a message's attributes are read by position, and
// a proof comes last). It holds views of the message and no other memory, so a parse
// allocates nothing where splitting the message did.
type attrs struct {
	n     int
	first [3]attr
	last  attr
}

// at returns attribute i, which must be one of the first three or the last.
func (a *attrs) at(i int) attr {
	if i == a.n-1 {
		return a.last
	}
	return a.first[i]
}

// parseAttrs scans a SCRAM message (or its bare part) into attributes. Every attribute
// must be a letter, '=' and a value free of ',' (values that need a ',' encode it), and
// the message must be UTF-8 without NUL.
func parseAttrs(msg []byte) (attrs, error) {
	var a attrs
	if len(msg) == 0 {
		return a, violation("empty message")
	}
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return a, violation("message is not UTF-8 text")
	}
	for rest, more := msg, true; more; {
		var p []byte
		p, rest, more = cutComma(rest)
		if len(p) < 2 || !isAlpha(p[0]) || p[1] != '=' {
			return a, violation("malformed attribute %q", truncate(p))
		}
		if a.n < len(a.first) {
			a.first[a.n] = attr{key: p[0], val: p[2:]}
		}
		a.last = attr{key: p[0], val: p[2:]}
		a.n++
	}
	return a, nil
}

// cutComma is bytes.Cut(b, ",").
func cutComma(b []byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, ','); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// expect returns the value of attribute i (parseAttrs) if it exists and has key k.
func (a *attrs) expect(i int, k byte) ([]byte, error) {
	if i >= a.n {
		return nil, violation("missing attribute %q", k)
	}
	if got := a.at(i).key; got != k {
		return nil, violation("expected attribute %q, got %q", k, got)
	}
	return a.at(i).val, nil
}

// isAlpha reports whether c is an ASCII letter.
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isPrintableNonce reports whether s is a valid, non-empty nonce: printable
// ASCII except ','.
func isPrintableNonce[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == ',' {
			return false
		}
	}
	return true
}

// nonceB64Len is the length of a nonce of ours, nonceLen random bytes in base64.
const nonceB64Len = (nonceLen + 2) / 3 * 4

// newNonce returns a fresh random nonce.
func newNonce() string {
	var b [nonceLen]byte
	return string(appendNonce(make([]byte, 0, nonceB64Len), &b))
}

// appendNonce appends a fresh random nonce to dst, drawing its random bytes into b.
func appendNonce(dst []byte, b *[nonceLen]byte) []byte {
	_, _ = rand.Read(b[:]) // never fails since Go 1.24; it crashes instead
	return b64.AppendEncode(dst, b[:])
}

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	cbFlag byte   // 'n', 'y' or 'p'
	bare   []byte // client-first-message-bare, part of AuthMessage
	nonce  []byte // client nonce
}

// gs2Header is the GS2 header of a client-first-message with channel-binding flag
// cbFlag, which the client-final-message repeats (in base64, with the binding data):
// parseClientFirst accepts exactly these three.
func gs2Header(cbFlag byte) string {
	switch cbFlag {
	case 'p':
		return "p=" + cbNameTLSServerEndPoint + ",,"
	case 'y':
		return "y,,"
	}
	return "n,,"
}

// parseClientFirst parses "gs2-header client-first-message-bare". The user
// name is ignored, as PostgreSQL takes it from the startup packet. The result
// holds views of msg.
func parseClientFirst(msg []byte) (clientFirst, error) {
	var cf clientFirst
	flag, rest, ok1 := cutComma(msg)
	authzid, bare, ok2 := cutComma(rest)
	if !ok1 || !ok2 {
		return cf, violation("client-first-message lacks a GS2 header")
	}
	switch {
	case string(flag) == "n" || string(flag) == "y":
		cf.cbFlag = flag[0]
	case bytes.HasPrefix(flag, []byte("p=")):
		if string(flag[2:]) != cbNameTLSServerEndPoint {
			return cf, violation("unsupported channel binding type %q", truncate(flag[2:]))
		}
		cf.cbFlag = 'p'
	default:
		return cf, violation("malformed GS2 channel binding flag %q", truncate(flag))
	}
	if len(authzid) != 0 {
		return cf, unsupported("authorization identity is not supported")
	}
	cf.bare = bare
	a, err := parseAttrs(bare)
	if err != nil {
		return cf, err
	}
	if a.first[0].key == 'm' {
		return cf, unsupported("client requires an unsupported SCRAM extension")
	}
	if _, err := a.expect(0, 'n'); err != nil {
		return cf, err
	}
	if cf.nonce, err = a.expect(1, 'r'); err != nil {
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
func parseServerFirst(msg []byte, clientNonce string) (serverFirst, error) {
	var sf serverFirst
	a, err := parseAttrs(msg)
	if err != nil {
		return sf, err
	}
	if a.first[0].key == 'm' {
		return sf, violation("server requires an unsupported SCRAM extension")
	}
	nonce, err := a.expect(0, 'r')
	if err != nil {
		return sf, err
	}
	if !isPrintableNonce(nonce) || len(nonce) <= len(clientNonce) ||
		!bytes.HasPrefix(nonce, []byte(clientNonce)) {
		return sf, violation("server nonce does not extend the client nonce")
	}
	sf.nonce = string(nonce)
	salt, err := a.expect(1, 's')
	if err != nil {
		return sf, err
	}
	if sf.salt, err = appendB64(nil, salt); err != nil || len(sf.salt) == 0 {
		return sf, violation("salt is not non-empty base64")
	}
	iter, err := a.expect(2, 'i')
	if err != nil {
		return sf, err
	}
	if sf.iterations, err = parseIterations(string(iter)); err != nil {
		return sf, violation("%v", err)
	}
	return sf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding []byte // decoded c=, in the buffer given to parseClientFinal
	nonce          []byte
	withoutProof   []byte // client-final-message-without-proof
	proof          [keyLen]byte
}

// parseClientFinal parses "c=<cb>,r=<nonce>[,ext...],p=<proof>", decoding the channel
// binding onto cb (a caller's buffer: room for the usual sizes saves an allocation). The
// result holds views of msg.
func parseClientFinal(msg, cb []byte) (clientFinal, error) {
	var cf clientFinal
	a, err := parseAttrs(msg)
	if err != nil {
		return cf, err
	}
	c, err := a.expect(0, 'c')
	if err != nil {
		return cf, err
	}
	if cf.channelBinding, err = appendB64(cb[:0], c); err != nil {
		return cf, violation("channel binding is not base64")
	}
	if cf.nonce, err = a.expect(1, 'r'); err != nil {
		return cf, err
	}
	last := a.n - 1
	proof, err := a.expect(last, 'p')
	if err != nil || last < 2 {
		return cf, violation("client-final-message does not end with a proof")
	}
	var buf [48]byte // a proof's 44 base64 characters decode to keyLen bytes
	p, err := appendKey(buf[:0], proof)
	if err != nil {
		return cf, violation("client proof: %v", err)
	}
	copy(cf.proof[:], p)
	cf.withoutProof = msg[:len(msg)-len(",p=")-len(proof)]
	return cf, nil
}
