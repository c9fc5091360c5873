package config

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const testSCRAM = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5c3Q=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5c2U="

func TestLoadUserlist(t *testing.T) {
	path := writeFile(t, t.TempDir(), "userlist.txt", `;; users
# hash comment

"plain" "secret"
"admin" "md545f2603610af569b6155c45067268c6b"
"scram" "`+testSCRAM+`"
  "spaced"   "pass word"   trailing junk ignored
"quo""te" "say ""hi"""
"empty" ""
"md5ish" "md5notreallyhex"
"plain" "replaced"
`)
	got, err := LoadUserlist(path)
	require.NoError(t, err)
	require.Equal(t, map[string]Credential{
		"plain":  {User: "plain", Password: "replaced"},
		"admin":  {User: "admin", Password: "md545f2603610af569b6155c45067268c6b"},
		"scram":  {User: "scram", Password: testSCRAM},
		"spaced": {User: "spaced", Password: "pass word"},
		`quo"te`: {User: `quo"te`, Password: `say "hi"`},
		"empty":  {User: "empty", Password: ""},
		"md5ish": {User: "md5ish", Password: "md5notreallyhex"},
	}, got)
	require.Equal(t, PasswordPlain, got["plain"].Kind())
	require.Equal(t, PasswordMD5, got["admin"].Kind())
	require.Equal(t, PasswordSCRAM, got["scram"].Kind())
	require.Equal(t, PasswordPlain, got["md5ish"].Kind())
	require.Equal(t, "admin (md5 password)", got["admin"].String())
}

func TestLoadUserlistErrors(t *testing.T) {
	tests := []struct{ name, content, reason string }{
		{"unquoted user", "bob \"pw\"\n", "user name: expected a field in double quotes"},
		{"missing password", "\n\"bob\"\n", `password for "bob": expected a field in double quotes`},
		{"unterminated user", "\"bob\n", "user name: missing closing double quote"},
		{"unterminated password", "\"bob\" \"pw\n", `password for "bob": missing closing double quote`},
		{"empty user", "\"\" \"pw\"\n", "empty user name"},
		{"bad scram", "\"bob\" \"SCRAM-SHA-256$4096:salt\"\n", `password for "bob": malformed SCRAM secret (want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)`},
		{"bad scram iterations", "\"bob\" \"SCRAM-SHA-256$x:salt$a:b\"\n", `password for "bob": SCRAM secret has a bad iteration count "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "userlist.txt", "; header\n"+tt.content)
			_, err := LoadUserlist(path)
			var le *LineError
			require.True(t, errors.As(err, &le), "%v", err)
			require.Equal(t, path, le.File)
			require.Equal(t, tt.reason, le.Reason)
			require.Greater(t, le.Line, 1)
		})
	}
	_, err := LoadUserlist(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}
