package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/auth"
)

// TestCheckPlain: a cleartext password against what auth_file stores (plain text, an md5
// hash, a SCRAM verifier); an empty password never matches, given or stored (it used to
// match an empty stored one: a user listed as "bob" "" logged in with no password).
func TestCheckPlain(t *testing.T) {
	v := auth.NewVerifier("pw", []byte("0123456789abcdef"), 4096)
	for _, c := range []struct {
		stored, given string
		ok            bool
	}{
		{"pw", "pw", true},
		{"pw", "px", false},
		{"", "", false},
		{"", "pw", false},
		{"pw", "", false},
		{auth.MD5Password("bob", "pw"), "pw", true},
		{auth.MD5Password("bob", ""), "", false},
		{v.String(), "pw", true},
		{v.String(), "px", false},
	} {
		require.Equal(t, c.ok, checkPlain("bob", c.stored, c.given), "stored %q given %q", c.stored, c.given)
	}
}
