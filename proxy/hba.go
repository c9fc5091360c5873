package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// auth_hba_file: pg_hba.conf-style rules that choose, per connection, how a client
// authenticates when auth_type = hba. Lines are
//
//	local     DATABASE USER         METHOD
//	host      DATABASE USER ADDRESS METHOD   (also hostssl, hostnossl)
//
// DATABASE and USER are "all" or comma-separated names ("sameuser" matches a database
// named like the user); ADDRESS is "all", a CIDR, or an address followed by a netmask
// column; METHOD is trust, reject, md5, scram-sha-256, password or cert. The first rule
// that matches decides; no match rejects. Options after the method are ignored.

// hbaMethod is what a rule asks of the client.
type hbaMethod string

const (
	hbaTrust    hbaMethod = "trust"
	hbaReject   hbaMethod = "reject"
	hbaMD5      hbaMethod = "md5"
	hbaSCRAM    hbaMethod = "scram-sha-256"
	hbaPassword hbaMethod = "password"
	hbaCert     hbaMethod = "cert"
)

type hbaRule struct {
	line   int
	conn   string // local, host, hostssl, hostnossl
	dbs    []string
	users  []string
	prefix netip.Prefix // zero: any address
	method hbaMethod
}

// hbaRules is a parsed auth_hba_file.
type hbaRules []hbaRule

// loadHBA reads path (relative to the ini file's directory when not absolute).
func loadHBA(cfg *config.Config) (hbaRules, error) {
	path := cfg.AuthHBAFile
	if !filepath.IsAbs(path) && cfg.Path != "" {
		path = filepath.Join(filepath.Dir(cfg.Path), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth_hba_file: %w", err)
	}
	r, err := parseHBA(b)
	if err != nil {
		return nil, fmt.Errorf("auth_hba_file %s: %w", path, err)
	}
	return r, nil
}

// parseHBA parses the rules, failing on the first line it cannot understand.
func parseHBA(b []byte) (hbaRules, error) {
	var rules hbaRules
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		r, err := parseHBALine(f)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		r.line = n
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

func parseHBALine(f []string) (hbaRule, error) {
	r := hbaRule{conn: strings.ToLower(f[0])}
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
	switch m := hbaMethod(strings.ToLower(rest[0])); m {
	case hbaTrust, hbaReject, hbaMD5, hbaSCRAM, hbaPassword, hbaCert:
		r.method = m
	default:
		return r, fmt.Errorf("unsupported method %q (want trust, reject, md5, scram-sha-256, password or cert)", rest[0])
	}
	return r, nil
}

// match returns the first rule for a connection, or nil. addr is invalid for a unix
// socket connection.
func (rs hbaRules) match(addr netip.Addr, tls bool, db, user string) *hbaRule {
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
		if !matchName(r.dbs, db, user) || !matchName(r.users, user, "") {
			continue
		}
		return r
	}
	return nil
}

func matchName(list []string, name, user string) bool {
	for _, x := range list {
		switch {
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

// remoteAddr is the client's IP address, or invalid for a unix socket.
func (s *Session) remoteAddr() netip.Addr {
	if ta, ok := s.remote().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// authenticateHBA authenticates the client as the first matching auth_hba_file rule
// says.
func (s *Session) authenticateHBA(cfg *config.Config, user string, cred config.Credential, known bool) error {
	s.srv.mu.Lock()
	rules, err := s.srv.hba, s.srv.hbaErr
	s.srv.mu.Unlock()
	if err != nil {
		s.log().Error("auth_type is hba but auth_hba_file could not be loaded", zap.Error(err))
		return pgerr.Fatal(pgerr.InvalidAuthorization, "authentication configuration is invalid")
	}
	addr := s.remoteAddr()
	r := rules.match(addr, s.tls, s.dbName, user)
	host := "local"
	if addr.IsValid() {
		host = addr.String()
	}
	enc := "no encryption"
	if s.tls {
		enc = "SSL encryption"
	}
	if r == nil {
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"no auth_hba_file entry for host %q, user %q, database %q, %s", host, user, s.dbName, enc)
	}
	switch r.method {
	case hbaTrust:
		return nil
	case hbaReject:
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"auth_hba_file rejects connection for host %q, user %q, database %q, %s", host, user, s.dbName, enc)
	case hbaPassword:
		return s.authCleartext(user, cred, known)
	case hbaSCRAM:
		return s.authSCRAM(user, cred, known)
	case hbaCert:
		return s.authCert(user)
	}
	if _, ok := s.srv.scramSecret(cred.Password); known && ok {
		return s.authSCRAM(user, cred, known) // md5 with a SCRAM secret: SCRAM, as in PostgreSQL
	}
	return s.authMD5(user, cred, known)
}

// authCert accepts a client whose verified TLS certificate names the user.
func (s *Session) authCert(user string) error {
	tc, ok := s.nc.(*tls.Conn)
	if !ok {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "certificate authentication needs an SSL connection")
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "connection requires a valid client certificate")
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != user {
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"certificate authentication failed for user %q: the certificate is for %q", user, cn)
	}
	return nil
}
