package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Default returns a Config holding PgBouncer 1.25's defaults (and pgmux's for its own
// keys), with no databases or users.
func Default() *Config {
	c := &Config{Databases: map[string]*Database{}, Users: map[string]*User{}}
	for i := range settings {
		if err := settings[i].parse(c, settings[i].def); err != nil {
			// The table's defaults are constants checked by TestDefaultsRoundTrip.
			panic(fmt.Sprintf("config: bad default for %s: %v", settings[i].name, err))
		}
	}
	return c
}

// Load reads a pgbouncer.ini file (following %include directives) and returns a defaulted,
// validated Config. A bad value, an unknown section or an unknown key fails with a
// *LineError naming file:line (with a "did you mean" when a known name is close), as
// PgBouncer refuses them; PgBouncer keys and sections pgmux does not implement are
// reported in Config.Warnings instead.
//
// Unlike PgBouncer, a relative %include path is taken relative to the directory of the
// file containing it, not the working directory. Other paths (auth_file, logfile, ...) are
// returned as written.
func Load(path string) (*Config, error) {
	c := Default()
	c.Path = path
	r := &iniReader{h: &loader{c: c}}
	if err := r.readFile(path, "", 0); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Set applies one [pgbouncer] key by name, through the same table Load uses. Keys are
// case-sensitive, as in the file (loader.setting). It returns an error wrapping ErrUnknownSetting or
// ErrUnsupportedSetting for keys pgmux does not implement, and "key: reason" for a bad
// value, in which case c is unchanged. Set does not check Reloadable: callers changing a
// live configuration (admin SET) should, and should Set on a Clone.
func Set(c *Config, key, value string) error {
	name := strings.TrimSpace(key)
	if err := apply(c, name, strings.TrimSpace(value)); err != nil {
		if errors.Is(err, ErrUnknownSetting) {
			return fmt.Errorf("%w: %s%s", err, name, didYouMean(name, settingNames()))
		}
		if errors.Is(err, ErrUnsupportedSetting) {
			return fmt.Errorf("%w: %s", err, name)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// apply sets a lower-case key, returning a bare reason or one of the sentinel errors.
func apply(c *Config, name, value string) error {
	s, ok := settingIndex[name]
	switch {
	case ok:
		return s.parse(c, value)
	case unsupportedSettings[name]:
		return ErrUnsupportedSetting
	default:
		return ErrUnknownSetting
	}
}

// Reloadable reports whether RELOAD (or the admin console's SET) may change key at run
// time. Keys pgmux does not implement are reported as not reloadable.
func Reloadable(key string) bool {
	s, ok := settingIndex[strings.TrimSpace(key)]
	return ok && s.reloadable
}

// Validate checks rules that involve more than one setting.
func (c *Config) Validate() error {
	if c.AuthType == AuthHBA && c.AuthHBAFile == "" {
		return errors.New("auth_type is hba but auth_hba_file is not set")
	}
	return c.validateTLS()
}

// ResolvePath returns path as pgmux opens it: a relative path is taken relative to the
// directory of the ini file the configuration came from. A configuration built from an
// upstream URL (FromURL) has no such directory, so the path is returned as written
// (relative to the working directory).
func (c *Config) ResolvePath(path string) string {
	if path == "" || filepath.IsAbs(path) || c.Path == "" || c.FromURL {
		return path
	}
	return filepath.Join(filepath.Dir(c.Path), path)
}

// CheckQuery interprets server_check_query: enabled is false when it is empty (checks
// disabled); query is "" with enabled true for "<empty>" (send an empty Query message, the
// PgBouncer 1.25 default); otherwise query is the SQL to run.
func (c *Config) CheckQuery() (query string, enabled bool) {
	switch c.ServerCheckQuery {
	case "":
		return "", false
	case CheckQueryEmpty:
		return "", true
	}
	return c.ServerCheckQuery, true
}

// Credentials returns a copy of the inline credentials (see FromURL); nil when there are none.
func (c *Config) Credentials() map[string]Credential {
	if c.InlineCredentials == nil {
		return nil
	}
	out := make(map[string]Credential, len(c.InlineCredentials))
	for k, v := range c.InlineCredentials {
		out[k] = v
	}
	return out
}

// loader routes what the ini reader finds into a Config.
type loader struct {
	c *Config
}

// warn records a warning naming file:line.
func (l *loader) warn(file string, line int, format string, args ...any) {
	l.c.Warnings = append(l.c.Warnings, fmt.Sprintf("%s:%d: ", file, line)+fmt.Sprintf(format, args...))
}

// section warns about PgBouncer sections pgmux ignores and refuses unknown ones.
func (l *loader) section(file string, line int, name string) error {
	switch name {
	case "pgbouncer", "databases", "users":
	case "peers":
		l.warn(file, line, "section [peers] is not supported by pgmux and is ignored")
	default:
		return &LineError{File: file, Line: line,
			Reason: fmt.Sprintf("unknown section [%s]%s", name, didYouMean(name, knownSections))}
	}
	return nil
}

// entry handles one key = value line.
func (l *loader) entry(file string, line int, section, key, value string) error {
	switch section {
	case "pgbouncer":
		return l.setting(file, line, key, value)
	case "databases":
		return l.database(file, line, key, value)
	case "users":
		return l.user(file, line, key, value)
	}
	return nil // in an ignored section; warned about at its header
}

// setting applies one [pgbouncer] line. The key is taken as written: PgBouncer's names
// are case-sensitive, and it refuses Pool_Mode or MAX_CLIENT_CONN as unknown (its
// "unknown parameter", and the file does not load), so pgmux does too, with the name to
// write. Taking them would let a file pgmux runs with fail under PgBouncer.
func (l *loader) setting(file string, line int, key, value string) error {
	name := key
	v := unquoteValue(value)
	err := apply(l.c, name, v)
	switch {
	case errors.Is(err, ErrUnsupportedSetting):
		l.warn(file, line, "setting %s is not supported by pgmux and is ignored", name)
		if l.c.Ignored == nil {
			l.c.Ignored = make(map[string]string)
		}
		l.c.Ignored[name] = v
	case errors.Is(err, ErrUnknownSetting):
		return &LineError{File: file, Line: line, Key: name,
			Reason: "unknown setting" + didYouMean(name, settingNames())}
	case err != nil:
		return lineErr(file, line, name, err)
	}
	return nil
}
