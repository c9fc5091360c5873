package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMD5Password(t *testing.T) {
	tests := []struct {
		name, user, password, want string
	}{
		// md5("secret" + "u"), computed independently.
		{"vector", "u", "secret", "md514ac701963725e89bfe34a2219d114a2"},
		// Stored by PostgreSQL 15 for CREATE ROLE m PASSWORD 'secret'.
		{"postgres", "m", "secret", "md5b52328d7451bfeace80c4b8c338106f9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MD5Password(tt.user, tt.password)
			require.Equal(t, tt.want, got)
			require.True(t, IsMD5Hash(got))
		})
	}
}

func TestMD5Response(t *testing.T) {
	salt := [4]byte{1, 2, 3, 4}
	// "md5" + md5(hex(md5("secret"+"u")) + salt), computed independently.
	const want = "md5dffd2564502f75393b3854e1532b9fa6"
	require.Equal(t, want, MD5Response("u", "secret", salt))
	require.Equal(t, want, MD5Response("u", "md514ac701963725e89bfe34a2219d114a2", salt))
	require.Equal(t, want, MD5Response("u", "md514AC701963725E89BFE34A2219D114A2", salt))
}

func TestVerifyMD5(t *testing.T) {
	salt := [4]byte{0xde, 0xad, 0xbe, 0xef}
	good := MD5Response("u", "secret", salt)
	tests := []struct {
		name     string
		stored   string
		user     string
		salt     [4]byte
		response string
		want     bool
	}{
		{"plain stored", "secret", "u", salt, good, true},
		{"hash stored", MD5Password("u", "secret"), "u", salt, good, true},
		{"wrong password", "Secret", "u", salt, good, false},
		{"wrong user", "secret", "v", salt, good, false},
		{"other salt", "secret", "u", [4]byte{}, good, false},
		{"truncated response", "secret", "u", salt, good[:20], false},
		{"empty response", "secret", "u", salt, "", false},
		{"empty stored", "", "u", salt, MD5Response("u", "", salt), false},
		{"scram stored", pgVerifiers[0].verifier, "u", salt, good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, VerifyMD5(tt.stored, tt.user, tt.salt, tt.response))
		})
	}
}

func TestIsMD5Hash(t *testing.T) {
	require.True(t, IsMD5Hash("md5b52328d7451bfeace80c4b8c338106f9"))
	require.False(t, IsMD5Hash("md5b52328d7451bfeace80c4b8c338106f"))   // short
	require.False(t, IsMD5Hash("md5b52328d7451bfeace80c4b8c338106fg"))  // not hex
	require.False(t, IsMD5Hash("MD5b52328d7451bfeace80c4b8c338106f9"))  // prefix case
	require.False(t, IsMD5Hash("md5b52328d7451bfeace80c4b8c338106f90")) // long
}
