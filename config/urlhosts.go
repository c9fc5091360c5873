package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// urlHost is one host of a libpq URL's host list: host (decoded, without brackets) and
// port ("" when none was given).
type urlHost struct{ host, port string }

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
	host, err := uriDecode(hostPart)
	if err != nil {
		return h, err
	}
	if port != "" {
		if _, err := parseInt(port, 1, 65535); err != nil {
			return h, fmt.Errorf("port: %w", err)
		}
	}
	return urlHost{host: host, port: port}, nil
}

// applyURLHosts sets db's host list and ports from a URL's hosts: one port for all when
// no host names one, else one per host, 5432 for those without (as libpq). A URL with
// no host leaves db's default.
func applyURLHosts(db *Database, hosts []urlHost) error {
	if len(hosts) == 0 {
		return nil
	}
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
