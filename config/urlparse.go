package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// upstreamURL is an upstream URL split and decoded the way libpq's URI parser does it
// (conninfo_uri_parse_options), not net/url's way: every part is decoded from %XX escapes
// only, so a '+' stays a '+' (net/url's query decoding reads it as a space, which turned
// options=-c search_path=a+b into "a b"), and the password runs to the first '@', with
// no character set of its own to check.
type upstreamURL struct {
	user, password string
	hasPassword    bool
	hosts          []urlHost // none when the authority names no host
	dbname         string
	params         map[string]string // the query; a key given twice keeps its last value
	redacted       string            // the URL as written, its password replaced
}

// parseUpstreamURL splits scheme://[user[:password]@][host[:port][,...]][/dbname][?k=v&...].
// Its errors never quote the password.
func parseUpstreamURL(raw string) (*upstreamURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a postgres:// or postgresql:// URL")
	}
	if scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("scheme %q is not postgres or postgresql", scheme)
	}
	u := &upstreamURL{redacted: raw}
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		user, pass, hasPass := strings.Cut(rest[:i], ":")
		var err error
		if u.user, err = uriDecode(user); err != nil {
			return nil, fmt.Errorf("user name: %w", err)
		}
		if u.password, err = uriDecode(pass); err != nil {
			return nil, errors.New("password: a '%' must start a %XX escape, and %00 is not allowed")
		}
		u.hasPassword = hasPass
		if hasPass {
			start := len(scheme) + len("://") + len(user) + 1
			u.redacted = raw[:start] + "xxxxx" + raw[start+len(pass):]
		}
		rest = rest[i+1:]
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	if err := u.parseHosts(rest[:end]); err != nil {
		return nil, err
	}
	rest = rest[end:]
	path, query, _ := strings.Cut(rest, "?")
	var err error
	if u.dbname, err = uriDecode(strings.TrimPrefix(path, "/")); err != nil {
		return nil, fmt.Errorf("database name: %w", err)
	}
	if u.params, err = parseURIQuery(query); err != nil {
		return nil, err
	}
	return u, nil
}

// parseHosts reads the authority's comma-separated host list.
func (u *upstreamURL) parseHosts(list string) error {
	if list == "" {
		return nil
	}
	items := strings.Split(list, ",")
	u.hosts = make([]urlHost, len(items))
	for i, item := range items {
		h, err := parseURLHost(item)
		if err == nil && h.host == "" && len(items) > 1 {
			err = errors.New("empty host")
		}
		switch {
		case err != nil && len(items) > 1:
			return fmt.Errorf("host %d of %q: %w", i+1, list, err)
		case err != nil:
			return err
		}
		u.hosts[i] = h
	}
	return nil
}

// parseURIQuery reads k=v pairs separated by '&', as libpq does: each needs exactly one
// '=', and both sides are %XX-decoded.
func parseURIQuery(query string) (map[string]string, error) {
	params := map[string]string{}
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("query parameter %q has no '='", pair)
		}
		if strings.Contains(v, "=") {
			return nil, fmt.Errorf("query parameter %s has a second '=' (write it %%3D)", k)
		}
		key, err := uriDecode(k)
		if err != nil {
			return nil, fmt.Errorf("query parameter %q: %w", k, err)
		}
		if params[key], err = uriDecode(v); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return params, nil
}

// uriDecode replaces each %XX with its byte and leaves every other byte, '+' included,
// as it is. Like libpq it refuses a '%' not followed by two hex digits, and %00, which
// no C string can carry.
func uriDecode(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for ; i >= 0; i = strings.IndexByte(s, '%') {
		b = append(b, s[:i]...)
		c, err := hex.DecodeString(s[i+1 : min(i+3, len(s))])
		if err != nil || len(c) != 1 {
			return "", fmt.Errorf("invalid escape %q: a '%%' must start %%XX", s[i:min(i+3, len(s))])
		}
		if c[0] == 0 {
			return "", errors.New("%00 is not allowed")
		}
		b = append(b, c[0])
		s = s[i+3:]
	}
	return string(append(b, s...)), nil
}
