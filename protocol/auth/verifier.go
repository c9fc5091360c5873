package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Mechanism names advertised in AuthenticationSASL.
const (
	MechanismSCRAM     = "SCRAM-SHA-256"
	MechanismSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

// DefaultIterations is PostgreSQL's default scram_iterations.
const DefaultIterations = 4096

// DefaultSaltLen is the salt length PostgreSQL uses for new verifiers.
const DefaultSaltLen = 16

// keyLen is the length of SHA-256 outputs: StoredKey, ServerKey, proofs.
const keyLen = sha256.Size

// b64 is the encoding of every base64 value in SCRAM. Strict decoding
// rejects non-canonical padding bits so that a parsed verifier formats back
// to the identical string.
var b64 = base64.StdEncoding.Strict()

// Verifier is a SCRAM-SHA-256 secret as stored by PostgreSQL: enough to
// authenticate a client without knowing its password.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// ParseVerifier parses a verifier in PostgreSQL's rolpassword format:
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
func ParseVerifier(s string) (Verifier, error) {
	rest, ok := strings.CutPrefix(s, MechanismSCRAM+"$")
	if !ok {
		return Verifier{}, errors.New("auth: verifier does not start with " + MechanismSCRAM + "$")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Verifier{}, errors.New("auth: verifier lacks the keys section")
	}
	iterStr, saltStr, ok := strings.Cut(params, ":")
	if !ok {
		return Verifier{}, errors.New("auth: verifier lacks iterations:salt")
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return Verifier{}, errors.New("auth: verifier lacks StoredKey:ServerKey")
	}
	var v Verifier
	var err error
	if v.Iterations, err = parseIterations(iterStr); err != nil {
		return Verifier{}, fmt.Errorf("auth: verifier: %w", err)
	}
	if v.Salt, err = decodeB64(saltStr); err != nil || len(v.Salt) == 0 {
		return Verifier{}, errors.New("auth: verifier salt is not non-empty base64")
	}
	if v.StoredKey, err = decodeKey(storedStr); err != nil {
		return Verifier{}, fmt.Errorf("auth: verifier StoredKey: %w", err)
	}
	if v.ServerKey, err = decodeKey(serverStr); err != nil {
		return Verifier{}, fmt.Errorf("auth: verifier ServerKey: %w", err)
	}
	return v, nil
}

// IsSCRAMVerifier reports whether s is a well-formed SCRAM-SHA-256 verifier.
func IsSCRAMVerifier(s string) bool {
	_, err := ParseVerifier(s)
	return err == nil
}

// NewVerifier derives the verifier PostgreSQL would store for password with
// the given salt and iteration count (use DefaultIterations and a random
// salt of DefaultSaltLen bytes, see NewSalt, unless matching an existing
// secret). The password is SASLprep-normalized first; like PostgreSQL, a
// password that SASLprep rejects is used as raw bytes. NewVerifier panics
// if iterations < 1 or salt is empty, or if FIPS 140-only mode rejects the
// salt; use DeriveVerifier for parameters not under the caller's control.
func NewVerifier(password string, salt []byte, iterations int) Verifier {
	v, err := DeriveVerifier(password, salt, iterations)
	if err != nil {
		panic(err)
	}
	return v
}

// DeriveVerifier is NewVerifier returning an error instead of panicking.
func DeriveVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	clientKey, serverKey, err := deriveKeys(password, salt, iterations)
	if err != nil {
		return Verifier{}, err
	}
	stored := sha256.Sum256(clientKey)
	return Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored[:],
		ServerKey:  serverKey,
	}, nil
}

// NewSalt returns DefaultSaltLen random bytes for NewVerifier.
func NewSalt() []byte {
	salt := make([]byte, DefaultSaltLen)
	_, _ = rand.Read(salt) // never fails since Go 1.24; it crashes instead
	return salt
}

// String formats v in PostgreSQL's rolpassword format.
func (v Verifier) String() string {
	return MechanismSCRAM + "$" + strconv.Itoa(v.Iterations) + ":" + b64.EncodeToString(v.Salt) +
		"$" + b64.EncodeToString(v.StoredKey) + ":" + b64.EncodeToString(v.ServerKey)
}

// validate checks the invariants ParseVerifier guarantees, for verifiers
// built by hand.
func (v Verifier) validate() error {
	if v.Iterations < 1 || len(v.Salt) == 0 || len(v.StoredKey) != keyLen || len(v.ServerKey) != keyLen {
		return errors.New("auth: invalid SCRAM verifier (need iterations >= 1, a salt and 32-byte keys)")
	}
	return nil
}

// deriveKeys computes ClientKey and ServerKey from a password (RFC 5802
// section 3): SaltedPassword = Hi(SASLprep(password), salt, iterations).
func deriveKeys(password string, salt []byte, iterations int) (clientKey, serverKey []byte, err error) {
	if iterations < 1 || len(salt) == 0 {
		return nil, nil, errors.New("auth: SCRAM needs iterations >= 1 and a non-empty salt")
	}
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, keyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: deriving SCRAM keys: %w", err)
	}
	ck, sk := hmacSHA256(salted, "Client Key"), hmacSHA256(salted, "Server Key")
	return ck[:], sk[:], nil
}

// hmacSHA256 returns HMAC-SHA-256(key, msg) (RFC 2104: H(K^opad || H(K^ipad || msg))).
// It hashes over stack buffers, so a SCRAM exchange's HMACs (two per client login)
// allocate nothing for the usual short messages; crypto/hmac allocates its state and
// two digests per call (about 600 bytes). msg is a string or the bytes a ServerSCRAM
// builds its AuthMessage in. TestHMACMatchesCryptoHMAC holds it to crypto/hmac's answers.
func hmacSHA256[T string | []byte](key []byte, msg T) [sha256.Size]byte {
	const block = sha256.BlockSize
	var k [block]byte
	if len(key) > block {
		sum := sha256.Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var buf [block + 512]byte
	in := buf[:]
	if block+len(msg) > len(buf) {
		in = make([]byte, block+len(msg))
	}
	in = in[:block+copy(in[block:], msg)]
	for i := range block {
		in[i] = k[i] ^ 0x36
	}
	inner := sha256.Sum256(in)
	var out [block + sha256.Size]byte
	for i := range block {
		out[i] = k[i] ^ 0x5c
	}
	copy(out[block:], inner[:])
	return sha256.Sum256(out[:])
}

// decodeB64 decodes canonical standard base64 (appendB64).
func decodeB64(s string) ([]byte, error) { return appendB64(nil, []byte(s)) }

// appendB64 appends the decoding of canonical standard base64 to dst. Unlike the
// encoding package it also rejects CR and LF, so that every accepted value has one
// spelling.
func appendB64(dst, src []byte) ([]byte, error) {
	if bytes.ContainsAny(src, "\r\n") {
		return nil, errors.New("auth: line break in base64")
	}
	return b64.AppendDecode(dst, src)
}

// decodeKey decodes a base64 SHA-256-sized key.
func decodeKey(s string) ([]byte, error) { return appendKey(nil, []byte(s)) }

// appendKey appends the decoding of src, a base64 SHA-256-sized key, to dst.
func appendKey(dst, src []byte) ([]byte, error) {
	k, err := appendB64(dst, src)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if n := len(k) - len(dst); n != keyLen {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", n, keyLen)
	}
	return k, nil
}

// parseIterations parses a decimal iteration count in [1, MaxInt32]; signs,
// spaces and leading zeros are rejected.
func parseIterations(s string) (int, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, fmt.Errorf("invalid iteration count %q", truncate(s))
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("invalid iteration count %q", truncate(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt32 {
		return 0, fmt.Errorf("iteration count %q out of range", truncate(s))
	}
	return int(n), nil
}

// truncate shortens attacker-controlled text quoted in error messages. It returns a
// copy, so an error keeps none of the caller's buffer, and arguments passed here on an
// error path do not make the caller's bytes escape on every other path.
func truncate[T string | []byte](s T) string {
	const limit = 64
	if len(s) > limit {
		return string(s[:limit]) + "..."
	}
	return strings.Clone(string(s))
}
