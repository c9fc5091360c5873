package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// urlHost is one host of a libpq multi-host URL, as written: host (unescaped, without
// brackets) and port ("" when none was given).
type urlHost struct{ host, port string }

// splitURLHosts takes the host list out of a libpq URL's authority
// (postgres://u:p@h1:5432,[fd00::2]:5433/db), which net/url cannot parse: it returns the
// URL with only the first host left in it, for url.Parse, and every host of the list. A
// URL with one host comes back unchanged, with no hosts.
func splitURLHosts(raw string) (string, []urlHost, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, nil, nil
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	at := strings.LastIndex(authority, "@")
	list := authority[at+1:]
	if !strings.Contains(list, ",") {
		return raw, nil, nil
	}
	items := strings.Split(list, ",")
	hosts := make([]urlHost, len(items))
	for i, item := range items {
		h, err := parseURLHost(item)
		if err != nil {
			return "", nil, fmt.Errorf("host %d of %q: %w", i+1, list, err)
		}
		hosts[i] = h
	}
	return scheme + "://" + authority[:at+1] + items[0] + rest[end:], hosts, nil
}

// parseURLHost parses "host", "host:port", "[v6]" or "[v6]:port".
func parseURLHost(s string) (urlHost, error) {
	var h urlHost
	hostPart, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return h, errors.New("missing ']' after an IPv6 address")
		}
		hostPart, port = s[1:end], s[end+1:]
		if port != "" && port[0] != ':' {
			return h, fmt.Errorf("unexpected %q after ']'", port)
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		hostPart, port = s[:i], s[i+1:]
		if strings.Contains(port, ":") {
			return h, errors.New("an IPv6 address must be in brackets")
		}
	}
	host, err := url.PathUnescape(hostPart)
	if err != nil {
		return h, err
	}
	if host == "" {
		return h, errors.New("empty host")
	}
	if port != "" {
		if _, err := parseInt(port, 1, 65535); err != nil {
			return h, fmt.Errorf("port: %w", err)
		}
	}
	return urlHost{host: host, port: port}, nil
}

// applyURLHosts sets db's host list and ports from a multi-host URL's hosts: one port for
// all when no host names one, else one per host, 5432 for those without (as libpq).
func applyURLHosts(db *Database, hosts []urlHost) error {
	names := make([]string, len(hosts))
	ports := make([]string, len(hosts))
	anyPort := false
	for i, h := range hosts {
		names[i] = h.host
		if strings.Contains(h.host, ":") {
			names[i] = "[" + h.host + "]"
		}
		ports[i] = h.port
		anyPort = anyPort || h.port != ""
	}
	if err := parseHosts(db, strings.Join(names, ",")); err != nil {
		return err
	}
	if !anyPort {
		db.Ports = ""
		return nil
	}
	for i, p := range ports {
		if p == "" {
			ports[i] = strconv.Itoa(5432)
		}
	}
	return parsePorts(db, strings.Join(ports, ","))
}
