package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PasswordKind says how a Credential's password is stored.
type PasswordKind int

const (
	PasswordPlain PasswordKind = iota // clear text
	PasswordMD5                       // "md5" + hex(md5(password + user))
	PasswordSCRAM                     // SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
)

// String names the kind.
func (k PasswordKind) String() string {
	switch k {
	case PasswordPlain:
		return "plain"
	case PasswordMD5:
		return "md5"
	case PasswordSCRAM:
		return "scram-sha-256"
	}
	return fmt.Sprintf("PasswordKind(%d)", int(k))
}

// Kind classifies the stored password. A value that merely starts with "md5" but is not
// followed by 32 hex digits is plain text.
func (c Credential) Kind() PasswordKind {
	switch {
	case isMD5Secret(c.Password):
		return PasswordMD5
	case strings.HasPrefix(c.Password, scramPrefix):
		return PasswordSCRAM
	}
	return PasswordPlain
}

// String never shows the password.
func (c Credential) String() string {
	return fmt.Sprintf("%s (%s password)", c.User, c.Kind())
}

// GoString never shows the password, even under %#v.
func (c Credential) GoString() string {
	return fmt.Sprintf("config.Credential{User:%q, Password:<redacted %s>}", c.User, c.Kind())
}

const scramPrefix = "SCRAM-SHA-256$"

func isMD5Secret(p string) bool {
	if len(p) != 35 || !strings.HasPrefix(p, "md5") {
		return false
	}
	for _, r := range p[3:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkSCRAM validates the shape "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>".
func checkSCRAM(p string) error {
	rest := strings.TrimPrefix(p, scramPrefix)
	params, keys, ok := strings.Cut(rest, "$")
	iter, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok || !ok1 || !ok2 || salt == "" || stored == "" || server == "" {
		return errors.New("malformed SCRAM secret (want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")
	}
	if n, err := strconv.Atoi(iter); err != nil || n <= 0 {
		return fmt.Errorf("SCRAM secret has a bad iteration count %q", iter)
	}
	return nil
}

// LoadUserlist reads a PgBouncer auth_file: one `"user" "password"` per line, fields in
// double quotes with "" standing for a literal quote, anything after the second field
// ignored, and blank lines or lines starting with ';' or '#' skipped. A later line for the
// same user replaces an earlier one. Errors are *LineError values naming file:line.
func LoadUserlist(path string) (map[string]Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseUserlist(path, string(data))
}

// parseUserlist parses the text of a userlist file named file.
func parseUserlist(file, text string) (map[string]Credential, error) {
	out := map[string]Credential{}
	for i, line := range strings.Split(strings.TrimPrefix(text, "\ufeff"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		cred, err := parseUserlistLine(line)
		if err != nil {
			return nil, &LineError{File: file, Line: i + 1, Reason: err.Error()}
		}
		out[cred.User] = cred
	}
	return out, nil
}

// parseUserlistLine parses `"user" "password" ...`.
func parseUserlistLine(line string) (Credential, error) {
	user, rest, err := quotedField(line)
	if err != nil {
		return Credential{}, fmt.Errorf("user name: %w", err)
	}
	if user == "" {
		return Credential{}, errors.New("empty user name")
	}
	pass, _, err := quotedField(strings.TrimLeft(rest, " \t"))
	if err != nil {
		return Credential{}, fmt.Errorf("password for %q: %w", user, err)
	}
	if strings.HasPrefix(pass, scramPrefix) {
		if err := checkSCRAM(pass); err != nil {
			return Credential{}, fmt.Errorf("password for %q: %w", user, err)
		}
	}
	return Credential{User: user, Password: pass}, nil
}

// quotedField reads one double-quoted field at the start of s and returns it and the rest.
func quotedField(s string) (field, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", errors.New(`expected a field in double quotes`)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", errors.New("missing closing double quote")
}
