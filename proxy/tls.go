package proxy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// requiresTLS reports whether an sslmode refuses plaintext.
func requiresTLS(mode string) bool {
	switch mode {
	case "require", "verify-ca", "verify-full":
		return true
	}
	return false
}

// clientTLSConfig loads client_tls_* settings; nil when TLS to clients is off. As in
// PgBouncer, verify-ca and verify-full require a client certificate, verified against
// client_tls_ca_file (the system's roots when it is not set, which Validate allows for
// verify-ca only); the other modes verify one a client offers when client_tls_ca_file is
// set.
func clientTLSConfig(cfg *config.Config) (*tls.Config, error) {
	t := cfg.ClientTLS
	if t.SSLMode == "" || t.SSLMode == "disable" || t.CertFile == "" || t.KeyFile == "" {
		if requiresTLS(t.SSLMode) {
			return nil, fmt.Errorf("client_tls_sslmode=%s needs client_tls_cert_file and client_tls_key_file", t.SSLMode)
		}
		return nil, nil
	}
	tc, err := baseTLSConfig(cfg, "client_tls", t)
	if err != nil {
		return nil, err
	}
	switch {
	case t.SSLMode == "verify-ca" || t.SSLMode == "verify-full":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	case tc.ClientCAs != nil:
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// baseTLSConfig is what both sides load alike from t (prefix names its settings in
// errors): the protocol versions, the TLS 1.0-1.2 cipher suites (TLS 1.3's are Go's,
// which it does not let be chosen), the certificate and its key, and the CA file, as
// ClientCAs (client side) or RootCAs (server side). Relative paths are taken from the ini
// file's directory, as auth_file's are.
func baseTLSConfig(cfg *config.Config, prefix string, t config.TLSSettings) (*tls.Config, error) {
	lo, hi, err := config.TLSVersions(t.Protocols)
	if err != nil {
		return nil, fmt.Errorf("%s_protocols: %w", prefix, err)
	}
	suites, err := config.TLSCiphers(t.Ciphers)
	if err != nil {
		return nil, fmt.Errorf("%s_ciphers: %w", prefix, err)
	}
	tc := &tls.Config{MinVersion: lo, MaxVersion: hi, CipherSuites: suites}
	if t.CertFile != "" && t.KeyFile != "" { // one alone: Validate refuses it
		cert, err := tls.LoadX509KeyPair(cfg.ResolvePath(t.CertFile), cfg.ResolvePath(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s_cert_file and %s_key_file: %w", prefix, prefix, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		roots, err := loadCA(cfg.ResolvePath(t.CAFile))
		if err != nil {
			return nil, fmt.Errorf("%s_ca_file: %w", prefix, err)
		}
		tc.ClientCAs, tc.RootCAs = roots, roots
	}
	return tc, nil
}

// serverTLSConfig loads server_tls_* settings into the configuration every login to a
// server clones (serverTLSFor); nil when off. A file that does not load is an error, as
// in PgBouncer: pgmux went on without it, and a CA file that did not load left
// verify-full trusting the system's roots instead.
func serverTLSConfig(cfg *config.Config) (*tls.Config, error) {
	t := cfg.ServerTLS
	switch t.SSLMode {
	case "", "disable", "allow":
		return nil, nil
	}
	tc, err := baseTLSConfig(cfg, "server_tls", t)
	if err != nil {
		return nil, err
	}
	tc.ClientCAs = nil
	switch t.SSLMode {
	case "verify-full":
	case "verify-ca":
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = verifyChainOnly(tc.RootCAs)
	default: // prefer, require: encrypt without checking the certificate, as libpq does
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

// serverTLSLocked sets t's TLS from server_tls_*, for a login to t.Host; s.mu is held.
func (s *Server) serverTLSLocked(t *pool.Target) {
	if tc := serverTLSFor(s.serverTLS, t.Host); tc != nil {
		t.TLS = tc
		t.TLSRequired = requiresTLS(s.cfg.ServerTLS.SSLMode)
	}
}

// serverTLSFor is base (serverTLSConfig's) for a login to host; nil when base is.
func serverTLSFor(base *tls.Config, host string) *tls.Config {
	if base == nil {
		return nil
	}
	tc := base.Clone()
	tc.ServerName = host
	return tc
}

func verifyChainOnly(roots *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("server sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		return err
	}
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in %s", path)
	}
	return pool, nil
}

// startTLS answers an SSLRequest: 'S' and a handshake when TLS is configured, else 'N'.
func (s *Session) startTLS() error {
	if s.tls {
		// PgBouncer drops a client that asks again inside TLS ("SSL req inside SSL");
		// pgmux answered 'N', inside the session, and went on. It is told why first.
		return pgerr.Fatal(pgerr.ProtocolViolation, "SSLRequest inside an SSL connection")
	}
	if err := s.nothingAfter("SSL request"); err != nil {
		return err
	}
	s.srv.mu.Lock()
	tc := s.srv.tlsConf
	s.srv.mu.Unlock()
	// A client logging in on a loop was accepted while client TLS was off (a RELOAD has
	// turned it on since): it goes on without, as a connection accepted before.
	if tc == nil || s.lgState() != nil {
		return s.loginWrite([]byte{'N'})
	}
	if err := s.loginWrite([]byte{'S'}); err != nil {
		return err
	}
	conn := tls.Server(&tlsTransport{Conn: s.nc, conf: tc}, tc)
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("client TLS handshake: %w", err)
	}
	s.useTLS(conn)
	return nil
}

// alpnPostgres is the ALPN protocol PostgreSQL 17 names its protocol by: a client that
// opens with TLS (sslnegotiation=direct) must offer it.
const alpnPostgres = "postgresql"

// directTLS is tc for clients that open with TLS; nil when tc is.
func directTLS(tc *tls.Config) *tls.Config {
	if tc == nil {
		return nil
	}
	d := tc.Clone()
	d.NextProtos = []string{alpnPostgres}
	return d
}

// tlsHandshakeRecord is the first byte of a TLS ClientHello (a handshake record), which
// no startup packet starts with (its length would be 369 MB at least).
const tlsHandshakeRecord = 0x16

// directTLS serves a client that opens with a TLS ClientHello instead of an SSLRequest
// (PostgreSQL 17's sslnegotiation=direct), as PostgreSQL 17 and PgBouncer 1.25 do: the
// handshake right away, and the ALPN protocol "postgresql" required, so that a client of
// another protocol (HTTPS) pointed at the port is not taken for a PostgreSQL one. Without
// client TLS, or for a client logging in on a loop, nothing is read here, and the
// ClientHello is refused as a startup packet.
func (s *Session) directTLS() error {
	s.srv.mu.Lock()
	tc := s.srv.tlsDirect
	s.srv.mu.Unlock()
	if tc == nil || s.lgState() != nil {
		return nil
	}
	b, err := s.rd.PeekByte()
	if err != nil || b != tlsHandshakeRecord {
		return err
	}
	conn := tls.Server(&tlsTransport{Conn: s.nc, conf: tc, pre: append([]byte(nil), s.rd.Window()...)}, tc)
	s.rd.Drop()
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("client direct TLS handshake: %w", err)
	}
	s.useTLS(conn)
	if conn.ConnectionState().NegotiatedProtocol != alpnPostgres {
		return pgerr.Fatal(pgerr.ProtocolViolation, "direct SSL connection without the ALPN protocol %q", alpnPostgres)
	}
	return nil
}

// useTLS makes conn, after its handshake, the client's connection: under s.wmu and
// s.ncMu, with which other goroutines write to a client still logging in (tell, for a
// kill or a shutdown's cut) and close it.
func (s *Session) useTLS(conn *tls.Conn) {
	rd, wr := wire.NewReader(conn), wire.NewWriter(conn)
	rd.MaxMessage = s.rd.MaxMessage // max_packet_size holds inside TLS too
	s.wmu.Lock()
	s.ncMu.Lock()
	s.nc, s.rd, s.wr, s.tls = conn, rd, wr, true
	s.ncMu.Unlock()
	s.wmu.Unlock()
}

// tlsTransport is the connection under a client's TLS: it keeps conf, the configuration
// its handshake used, whose certificate SCRAM-SHA-256-PLUS binds to (a RELOAD may have
// loaded another since), and its first reads return pre, bytes already read from it (a
// ClientHello peeked at).
type tlsTransport struct {
	net.Conn
	conf *tls.Config
	pre  []byte
}

func (c *tlsTransport) Read(p []byte) (int, error) {
	if len(c.pre) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pre)
	c.pre = c.pre[n:]
	return n, nil
}

// nothingAfter refuses a client that sent more after an SSLRequest or GSSENCRequest
// (what) without waiting for the answer, as PostgreSQL and PgBouncer do (the class of
// CVE-2021-23214): bytes sent before the handshake are not encrypted, and may have been
// put there by a man in the middle. They would go to the TLS handshake and fail it, or,
// when pgmux answers 'N', be read as the client's StartupMessage; whatever the answer,
// they are refused, in the open, and not read.
func (s *Session) nothingAfter(what string) error {
	if s.rd.Buffered() == 0 {
		return nil
	}
	return pgerr.Fatal(pgerr.ProtocolViolation, "received unencrypted data after %s", what).
		WithDetail("The client did not wait for the answer: a client bug, or bytes put there by someone in the middle.")
}

// channelBinding returns the tls-server-end-point data for SCRAM-SHA-256-PLUS: the hash
// of the certificate the client's handshake was sent, from the configuration that
// handshake used. pgmux hashed the certificate configured when the SCRAM exchange began:
// after a RELOAD to another client_tls_cert_file between a client's handshake and its
// SCRAM exchange, the client's binding did not match and its login failed.
func (s *Session) channelBinding() []byte {
	conn, ok := s.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	under, ok := conn.NetConn().(*tlsTransport)
	if !ok || len(under.conf.Certificates) == 0 { // one certificate is loaded, or none
		return nil
	}
	own := under.conf.Certificates[0]
	cert := own.Leaf // tls.LoadX509KeyPair parses it
	if cert == nil {
		var err error
		if len(own.Certificate) == 0 {
			return nil
		}
		if cert, err = x509.ParseCertificate(own.Certificate[0]); err != nil {
			return nil
		}
	}
	return endpointHash(cert)
}

// endpointHash is tls-server-end-point's hash of cert (RFC 5929, 4.1): the hash of its
// signature algorithm, SHA-256 where that is MD5, SHA-1 or SHA-256 (or none is named).
// libpq hashes the same way: a certificate signed with SHA-384 or SHA-512 hashed with
// SHA-256 here failed every SCRAM-SHA-256-PLUS login ("channel binding check failed").
func endpointHash(cert *x509.Certificate) []byte {
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h := sha512.Sum384(cert.Raw)
		return h[:]
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h := sha512.Sum512(cert.Raw)
		return h[:]
	}
	h := sha256.Sum256(cert.Raw)
	return h[:]
}
