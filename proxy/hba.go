package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/hba"
)

// loadHBA reads auth_hba_file (relative to the ini file's directory when not absolute;
// see config.Config.ResolvePath).
func loadHBA(cfg *config.Config) (hba.Rules, error) {
	if cfg.AuthHBAFile == "" {
		return nil, errors.New("auth_type is hba but auth_hba_file is not set")
	}
	path := cfg.ResolvePath(cfg.AuthHBAFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth_hba_file: %w", err)
	}
	r, err := hba.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("auth_hba_file %s: %w", path, err)
	}
	return r, nil
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
	var r *hba.Rule
	if s.kind == kindPhysical {
		r = rules.MatchPhysicalReplication(addr, s.tls, user)
	} else {
		r = rules.Match(addr, s.tls, s.dbName, user)
	}
	host := "local"
	if addr.IsValid() {
		host = addr.String()
	}
	enc := "no encryption"
	if s.tls {
		enc = "SSL encryption"
	}
	if r == nil && s.kind == kindPhysical {
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"no auth_hba_file entry for replication connection from host %q, user %q, %s", host, user, enc)
	}
	if r == nil {
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"no auth_hba_file entry for host %q, user %q, database %q, %s", host, user, s.dbName, enc)
	}
	switch r.Method {
	case hba.Trust:
		return authTrust(cfg, user, known)
	case hba.Reject:
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"auth_hba_file rejects connection for host %q, user %q, database %q, %s", host, user, s.dbName, enc)
	case hba.Password:
		return s.authCleartext(user, cred, known)
	case hba.SCRAM:
		return s.authSCRAM(user, cred, known)
	case hba.Cert:
		return s.authCert(cfg, user, known)
	}
	if _, ok := s.srv.scramSecret(cred.Password); known && ok {
		return s.authSCRAM(user, cred, known) // md5 with a SCRAM secret: SCRAM, as in PostgreSQL
	}
	return s.authMD5(user, cred, known)
}

// authCert accepts a client whose verified TLS certificate names the user, if the user
// is listed (userListed), as PgBouncer's login_via_cert requires: a certificate for a
// user in neither auth_file nor auth_query's answer is refused, as for trust. pgmux let
// any user with a matching certificate in.
func (s *Session) authCert(cfg *config.Config, user string, known bool) error {
	tc, ok := s.nc.(*tls.Conn)
	if !ok {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "certificate authentication needs an SSL connection")
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "connection requires a valid client certificate")
	}
	if !userListed(cfg, known) {
		return pgerr.Fatal(pgerr.InvalidAuthorization, "certificate authentication failed for user %q", user)
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != user {
		return pgerr.Fatal(pgerr.InvalidAuthorization,
			"certificate authentication failed for user %q: the certificate is for %q", user, cn)
	}
	return nil
}
