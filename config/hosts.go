package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Endpoint is one server of a [databases] entry: a host name, IP address or unix socket
// directory, and a port.
type Endpoint struct {
	Host string
	Port int
}

// TargetSessionAttrs are target_session_attrs' values, libpq's spelling. PgBouncer 1.25
// knows all but prefer-standby.
var TargetSessionAttrs = []string{"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}

// LoadBalanceHosts are load_balance_hosts' values (PgBouncer 1.24+).
var LoadBalanceHosts = []string{"round-robin", "disable"}

// Endpoints returns the entry's servers in the order written: one per host of the host
// list, each with its own port when port= lists one per host, else with the one port.
// An entry without host gives one endpoint with an empty Host (the unix socket default).
func (d *Database) Endpoints() []Endpoint {
	hosts := splitHosts(d.Host)
	ports := []int{d.Port}
	if d.Ports != "" {
		ports = ports[:0]
		for _, p := range strings.Split(d.Ports, ",") {
			n, _ := strconv.Atoi(p) // checked by checkHosts
			ports = append(ports, n)
		}
	}
	out := make([]Endpoint, len(hosts))
	for i, h := range hosts {
		out[i] = Endpoint{Host: h, Port: ports[min(i, len(ports)-1)]}
	}
	return out
}

// HostKey names the entry's set of servers: entries with the same hosts and ports share
// what pgmux learns about those servers' roles.
func (d *Database) HostKey() string {
	var b strings.Builder
	for i, e := range d.Endpoints() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.Host + "|" + strconv.Itoa(e.Port))
	}
	return b.String()
}

// EffectiveTargetSessionAttrs is the entry's target_session_attrs, "any" when unset.
func (d *Database) EffectiveTargetSessionAttrs() string {
	if d.TargetSessionAttrs == "" {
		return "any"
	}
	return d.TargetSessionAttrs
}

// EffectiveLoadBalanceHosts is the entry's load_balance_hosts, "round-robin" when unset.
func (d *Database) EffectiveLoadBalanceHosts() string {
	if d.LoadBalanceHosts == "" {
		return "round-robin"
	}
	return d.LoadBalanceHosts
}

// splitHosts splits a host list on commas, trimming blanks and the brackets an IPv6
// address may be written in. A single empty host stays one (empty) entry.
func splitHosts(s string) []string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && p[0] == '[' && p[len(p)-1] == ']' {
			p = p[1 : len(p)-1]
		}
		parts[i] = p
	}
	return parts
}

// parseHosts is host='s parser: a host list, kept normalised (no blanks or brackets).
func parseHosts(d *Database, v string) error {
	hosts := splitHosts(v)
	if len(hosts) > 1 {
		for i, h := range hosts {
			if h == "" {
				return fmt.Errorf("host list %q: host %d is empty", v, i+1)
			}
		}
	}
	d.Host = strings.Join(hosts, ",")
	return nil
}

// parsePorts is port='s parser: one port, or a comma-separated list of one per host.
func parsePorts(d *Database, v string) error {
	items := strings.Split(v, ",")
	ports := make([]string, len(items))
	for i, it := range items {
		n, err := parseInt(it, 1, 65535)
		if err != nil {
			return err
		}
		if i == 0 {
			d.Port = n
		}
		ports[i] = strconv.Itoa(n)
	}
	d.Ports = ""
	if len(ports) > 1 {
		d.Ports = strings.Join(ports, ",")
	}
	return nil
}

// checkHosts checks that a port list names one port per host, as libpq requires.
func (d *Database) checkHosts() error {
	if d.Ports == "" {
		return nil
	}
	nh, np := len(splitHosts(d.Host)), strings.Count(d.Ports, ",")+1
	if nh != np {
		return fmt.Errorf("port lists %d ports for %d hosts: give one port for all, or one per host", np, nh)
	}
	return nil
}

// dbEnum returns a [databases] parser for a key taking one of allowed.
func dbEnum(allowed []string, f func(*Database) *string) func(*Database, string) error {
	return func(d *Database, v string) error {
		s, err := oneOf(v, allowed...)
		if err == nil {
			*f(d) = s
		}
		return err
	}
}
