package proxy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/pgmux/pgmux/config"
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

// clientTLSConfig loads client_tls_* settings; nil when TLS to clients is off.
func clientTLSConfig(cfg *config.Config) (*tls.Config, error) {
	t := cfg.ClientTLS
	if t.SSLMode == "" || t.SSLMode == "disable" || t.CertFile == "" || t.KeyFile == "" {
		if requiresTLS(t.SSLMode) {
			return nil, fmt.Errorf("client_tls_sslmode=%s needs client_tls_cert_file and client_tls_key_file", t.SSLMode)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client_tls_ca_file: %w", err)
		}
		tc.ClientCAs = pool
		if t.SSLMode == "verify-ca" || t.SSLMode == "verify-full" {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return tc, nil
}

// serverTLSConfig builds the TLS configuration for logging in to host; nil when off.
func serverTLSConfig(cfg *config.Config, host string) *tls.Config {
	t := cfg.ServerTLS
	switch t.SSLMode {
	case "", "disable", "allow":
		return nil
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if t.CertFile != "" && t.KeyFile != "" {
		if cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err == nil {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	var roots *x509.CertPool
	if t.CAFile != "" {
		roots, _ = loadCA(t.CAFile)
	}
	switch t.SSLMode {
	case "verify-full":
		tc.RootCAs = roots
	case "verify-ca":
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = verifyChainOnly(roots)
	default: // prefer, require: encrypt without checking the certificate, as libpq does
		tc.InsecureSkipVerify = true
	}
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
	conn := tls.Server(s.nc, tc)
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("client TLS handshake: %w", err)
	}
	s.nc = conn
	max := s.rd.MaxMessage
	s.rd = wire.NewReader(conn)
	s.rd.MaxMessage = max // max_packet_size holds inside TLS too
	s.wr = wire.NewWriter(conn)
	s.tls = true
	return nil
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

// channelBinding returns the tls-server-end-point data for SCRAM-SHA-256-PLUS.
func (s *Session) channelBinding() []byte {
	conn, ok := s.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	_ = conn // the certificate that binds is our own, taken from the config
	s.srv.mu.Lock()
	tc := s.srv.tlsConf
	s.srv.mu.Unlock()
	if tc == nil || len(tc.Certificates) == 0 || len(tc.Certificates[0].Certificate) == 0 {
		return nil
	}
	cert, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		return nil
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
