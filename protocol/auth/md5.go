package auth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
)

// md5Prefix marks a password hash in PostgreSQL's MD5 format.
const md5Prefix = "md5"

// md5HashLen is the length of "md5" followed by 32 lowercase hex digits.
const md5HashLen = len(md5Prefix) + 2*md5.Size

// MD5Password returns the value PostgreSQL stores for password_encryption =
// md5: "md5" followed by the hex MD5 of password concatenated with user.
func MD5Password(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return md5Prefix + hex.EncodeToString(sum[:])
}

// IsMD5Hash reports whether s has the shape of a stored MD5 password hash
// ("md5" and 32 hex digits), which is how PostgreSQL and PgBouncer tell a
// hash from a plain password.
func IsMD5Hash(s string) bool {
	if len(s) != md5HashLen || s[:len(md5Prefix)] != md5Prefix {
		return false
	}
	for i := len(md5Prefix); i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// MD5Response returns the PasswordMessage payload a client sends in answer
// to AuthenticationMD5Password with the given salt. passwordOrMD5Hash is
// either the plain password or an already hashed "md5..." value, as found in
// userlist.txt; the hash is all that is needed to answer the challenge.
func MD5Response(user, passwordOrMD5Hash string, salt [4]byte) string {
	var hashed string
	if IsMD5Hash(passwordOrMD5Hash) {
		// PostgreSQL emits lowercase hex; accept hand-written uppercase too.
		hashed = toLowerHex(passwordOrMD5Hash)
	} else {
		hashed = MD5Password(user, passwordOrMD5Hash)
	}
	inner := make([]byte, 0, 2*md5.Size+len(salt))
	inner = append(inner, hashed[len(md5Prefix):]...)
	inner = append(inner, salt[:]...)
	sum := md5.Sum(inner)
	return md5Prefix + hex.EncodeToString(sum[:])
}

// VerifyMD5 reports whether clientResponse answers the MD5 challenge salt
// for user, given the stored password (plain or "md5..." hash). It returns
// false for an empty stored password and for a SCRAM verifier, from which an
// MD5 response cannot be checked. The comparison is constant time.
func VerifyMD5(stored string, user string, salt [4]byte, clientResponse string) bool {
	if stored == "" || IsSCRAMVerifier(stored) {
		return false
	}
	want := MD5Response(user, stored, salt)
	return subtle.ConstantTimeCompare([]byte(want), []byte(clientResponse)) == 1
}

// toLowerHex lowercases the ASCII letters of s (only "A"-"F" can occur in a
// hash accepted by IsMD5Hash; the "md5" prefix is already lowercase).
func toLowerHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
