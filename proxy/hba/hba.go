// Package hba reads auth_hba_file (auth_type = hba) and finds the rule for a connection.
// Package proxy authenticates the client as the rule says.
package hba

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// auth_hba_file: pg_hba.conf-style rules that choose, per connection, how a client
// authenticates when auth_type = hba. Lines are
//
//	local     DATABASE USER         METHOD
//	host      DATABASE USER ADDRESS METHOD   (also hostssl, hostnossl)
//
// DATABASE and USER are "all" or comma-separated names ("sameuser" matches a database
// named like the user; "replication" matches a physical replication connection, which
// "all" does not, as in PostgreSQL; a logical one matches its database); ADDRESS is "all", a CIDR, or an address followed by a netmask
// column; METHOD is trust, reject, md5, scram-sha-256, password or cert. The first rule
// that matches decides; no match rejects. Options after the method are ignored.

// Method is what a rule asks of the client.
type Method string

// The methods a rule may name.
const (
	Trust    Method = "trust"
	Reject   Method = "reject"
	MD5      Method = "md5"
	SCRAM    Method = "scram-sha-256"
	Password Method = "password"
	Cert     Method = "cert"
)

// Rule is one line of the file.
type Rule struct {
	Line   int    // its line number in the file
	Method Method // what it asks of the client
	conn   string // local, host, hostssl, hostnossl
	dbs    []string
	users  []string
	prefix netip.Prefix // zero: any address
}

// Rules is a parsed auth_hba_file.
type Rules []Rule

// Parse parses the rules, failing on the first line it cannot understand.
func Parse(b []byte) (Rules, error) {
	var rules Rules
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		r, err := parseLine(f)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		r.Line = n
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

func parseLine(f []string) (Rule, error) {
	r := Rule{conn: strings.ToLower(f[0])}
	var rest []string
	switch r.conn {
	case "local":
		if len(f) < 4 {
			return r, fmt.Errorf("want: local DATABASE USER METHOD")
		}
		rest = f[3:]
	case "host", "hostssl", "hostnossl":
		if len(f) < 5 {
			return r, fmt.Errorf("want: %s DATABASE USER ADDRESS METHOD", r.conn)
		}
		addr := f[3]
		rest = f[4:]
		if !strings.Contains(addr, "/") && addr != "all" && len(rest) >= 2 {
			if mask := net.ParseIP(rest[0]); mask != nil { // ADDRESS NETMASK
				ones, _ := net.IPMask(mask.To4()).Size()
				if mask.To4() == nil {
					ones, _ = net.IPMask(mask).Size()
				}
				addr = fmt.Sprintf("%s/%d", addr, ones)
				rest = rest[1:]
			}
		}
		if addr != "all" {
			p, err := netip.ParsePrefix(addr)
			if err != nil {
				a, aerr := netip.ParseAddr(addr)
				if aerr != nil {
					return r, fmt.Errorf("invalid address %q (want all, a CIDR, or an address and netmask)", f[3])
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			r.prefix = p.Masked()
		}
	default:
		return r, fmt.Errorf("unknown connection type %q (want local, host, hostssl or hostnossl)", f[0])
	}
	r.dbs = strings.Split(f[1], ",")
	r.users = strings.Split(f[2], ",")
	switch m := Method(strings.ToLower(rest[0])); m {
	case Trust, Reject, MD5, SCRAM, Password, Cert:
		r.Method = m
	default:
		return r, fmt.Errorf("unsupported method %q (want trust, reject, md5, scram-sha-256, password or cert)", rest[0])
	}
	return r, nil
}

// Match returns the first rule for a connection, or nil. addr is invalid for a unix
// socket connection.
func (rs Rules) Match(addr netip.Addr, tls bool, db, user string) *Rule {
	return rs.match(addr, tls, user, func(dbs []string) bool { return matchName(dbs, db, user) })
}

// MatchPhysicalReplication returns the first rule for a physical replication connection
// (replication=true): only a rule whose DATABASE names the keyword replication fits it,
// "all" does not, as in PostgreSQL's pg_hba.conf.
func (rs Rules) MatchPhysicalReplication(addr netip.Addr, tls bool, user string) *Rule {
	return rs.match(addr, tls, user, func(dbs []string) bool { return slices.Contains(dbs, "replication") })
}

// match returns the first rule whose connection type, address and user fit, and whose
// databases dbOK accepts.
func (rs Rules) match(addr netip.Addr, tls bool, user string, dbOK func([]string) bool) *Rule {
	for i := range rs {
		r := &rs[i]
		switch r.conn {
		case "local":
			if addr.IsValid() {
				continue
			}
		case "host", "hostssl", "hostnossl":
			if !addr.IsValid() || (r.conn == "hostssl" && !tls) || (r.conn == "hostnossl" && tls) {
				continue
			}
			if r.prefix.IsValid() && !r.prefix.Contains(addr.Unmap()) {
				continue
			}
		}
		if !dbOK(r.dbs) || !matchName(r.users, user, "") {
			continue
		}
		return r
	}
	return nil
}

func matchName(list []string, name, user string) bool {
	for _, x := range list {
		switch {
		case x == "replication" && user != "": // (user is set for DATABASE lists only)
			// The keyword, in DATABASE: physical replication only (quoted, a database
			// named so).
		case x == "all", x == name:
			return true
		case x == "sameuser" && user != "" && name == user:
			return true
		case strings.HasPrefix(x, `"`) && strings.Trim(x, `"`) == name:
			return true
		}
	}
	return false
}
