package faults

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// startTLSPostgres starts a private PostgreSQL with ssl = on, serving pki's certificate
// for localhost, 127.0.0.1 and ::1, and any more settings (ALTER SYSTEM values).
func startTLSPostgres(t *testing.T, pki *testPKI, more ...string) *pgtest.Server {
	t.Helper()
	pg := pgtest.StartPrivate(t)
	pg.WriteDataFile(t, "test-server.crt", pki.CertPEM)
	pg.WriteDataFile(t, "test-server.key", pki.KeyPEM)
	for _, s := range append([]string{"ssl = on", "ssl_cert_file = 'test-server.crt'",
		"ssl_key_file = 'test-server.key'"}, more...) {
		pg.Exec(t, "ALTER SYSTEM SET "+s)
	}
	pg.Exec(t, "SELECT pg_reload_conf()")
	eventually(t, 10*time.Second, "PostgreSQL takes TLS", func() bool {
		conn, err := tryConnect(fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=require&connect_timeout=5",
			pgtest.SuperUser, pg.Port, pgtest.AppDB))
		if err != nil {
			return false
		}
		_ = conn.Close(context.Background())
		return true
	})
	return pg
}

// serverSSL reports whether the server connection conn's statement runs on is encrypted.
func serverSSL(t *testing.T, conn *pgx.Conn) bool {
	t.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	var ssl bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
	return ssl
}

// reload appends lines to m's ini file and has the console RELOAD it (over TLS when m
// takes it: client_tls_sslmode may require it).
func reload(t *testing.T, m *mux, lines ...string) error {
	t.Helper()
	f, err := os.OpenFile(m.Ini, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	admin := connect(t, strings.Replace(m.URL("admin", "adminpass", "pgbouncer"), "sslmode=disable", "sslmode=prefer", 1))
	ctx, cancel := ctxT()
	defer cancel()
	_, err = admin.Exec(ctx, "RELOAD", pgxSimple)
	return err
}

// connectTLS opens a pgx connection to rawURL whose TLS configuration edit may change.
func connectTLS(rawURL string, edit func(*tls.Config)) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.TLSConfig != nil && edit != nil {
		edit(cfg.TLSConfig)
	}
	ctx, cancel := ctxT()
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// TestClientTLSVerifyCARequiresCertificate: client_tls_sslmode = verify-ca requires a
// client certificate, as PgBouncer does ("Client must use TLS with valid client
// certificate"), with or without client_tls_ca_file (without, the system's roots verify
// it, as libtls does). pgmux asked for one only when client_tls_ca_file was set: without
// it a client with no certificate at all logged in.
func TestClientTLSVerifyCARequiresCertificate(t *testing.T) {
	pg := pgtest.Start(t)
	pki := newPKI(t)
	m := startMux(t, pg, bouncer{Extra: []string{"client_tls_sslmode = verify-ca",
		"client_tls_cert_file = " + pki.Cert, "client_tls_key_file = " + pki.Key}})
	conn, err := tryConnect(fmt.Sprintf("postgres://app:apppass@localhost:%d/app?sslmode=verify-full&sslrootcert=%s&connect_timeout=10",
		m.Port, pki.CA))
	if err == nil {
		_ = conn.Close(context.Background())
	}
	require.Error(t, err, "a client without a certificate logged in with client_tls_sslmode = verify-ca")
	require.Contains(t, err.Error(), "certificate")
}

// TestClientTLSVerifyFullNeedsCAFile: client_tls_sslmode = verify-full without
// client_tls_ca_file is a configuration error, as in PgBouncer ("client_tls_sslmode
// requires client_tls_ca_file"); pgmux started and checked no client certificate.
func TestClientTLSVerifyFullNeedsCAFile(t *testing.T) {
	pki := newPKI(t)
	path := muxtest.WriteConfig(t, t.TempDir(), fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_port = 6432
auth_file = userlist.txt
client_tls_sslmode = verify-full
client_tls_cert_file = %s
client_tls_key_file = %s
`, pki.Cert, pki.Key), "")
	_, err := config.Load(path)
	require.ErrorContains(t, err, "client_tls_ca_file")
}

// TestServerTLSFilesChecked: a server_tls_ca_file, server_tls_cert_file or
// server_tls_key_file pgmux cannot load is an error at start and at RELOAD (which keeps
// the configuration in force), as in PgBouncer ("invalid server_tls_ca_file"). pgmux
// ignored it: a CA file that did not load left verify-full trusting the system's roots
// instead of the CA named, and a client certificate that did not load was left out of
// the login without a word.
func TestServerTLSFilesChecked(t *testing.T) {
	pki := newPKI(t)
	missing := pki.Dir + "/missing.pem"
	for _, tc := range []struct{ name, lines string }{
		{"ca file", "server_tls_sslmode = verify-full\nserver_tls_ca_file = " + missing},
		{"cert file", "server_tls_cert_file = " + missing + "\nserver_tls_key_file = " + pki.Key},
		{"key file", "server_tls_cert_file = " + pki.Cert + "\nserver_tls_key_file = " + missing},
		{"key of another certificate", "server_tls_cert_file = " + pki.Cert + "\nserver_tls_key_file = " + newPKI(t).Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := muxtest.WriteConfig(t, t.TempDir(), "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\n"+
				"listen_port = 6432\nauth_file = userlist.txt\n"+tc.lines+"\n", "")
			cfg, err := config.Load(path)
			require.NoError(t, err)
			_, err = proxy.New(proxy.Options{Config: cfg})
			require.Error(t, err, "pgmux started with a server TLS file it cannot load")
			require.Contains(t, err.Error(), "server_tls")
		})
	}
	t.Run("reload", func(t *testing.T) {
		pg := pgtest.Start(t)
		m := startMux(t, pg, bouncer{})
		require.Error(t, reload(t, m, "server_tls_sslmode = verify-full", "server_tls_ca_file = "+missing))
		conn := connect(t, m.App(pgtest.AppDB)) // the former configuration is still in force
		require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
	})
}

// TestServerTLSReloadReconnects: a RELOAD that changes server_tls_* settings recycles
// the server connections (idle ones close, leased ones when released), as PgBouncer
// does: connections opened under the former settings, perhaps less secure, would
// otherwise be used on. pgmux kept them: after server_tls_sslmode went from disable to
// require, clients ran on the unencrypted connections for as long as they lived.
func TestServerTLSReloadReconnects(t *testing.T) {
	pki := newPKI(t)
	pg := startTLSPostgres(t, pki)
	m := startMux(t, pg, bouncer{PoolSize: 1, Extra: []string{"server_tls_sslmode = disable"}})
	conn := connect(t, m.App(pgtest.AppDB))
	require.False(t, serverSSL(t, conn))
	require.NoError(t, reload(t, m, "server_tls_sslmode = require"))
	require.True(t, serverSSL(t, conn), "after RELOAD to server_tls_sslmode = require, a plaintext server connection is still used")
}

// TestTLSProtocols: client_tls_protocols and server_tls_protocols pick the TLS versions
// pgmux speaks, as in PgBouncer; pgmux accepted them and applied none (TLS 1.2 and 1.3
// whatever they said).
func TestTLSProtocols(t *testing.T) {
	pki := newPKI(t)
	pg := startTLSPostgres(t, pki, "ssl_max_protocol_version = 'TLSv1.2'")
	url := func(m *mux) string {
		return fmt.Sprintf("postgres://app:apppass@localhost:%d/app?sslmode=verify-full&sslrootcert=%s&connect_timeout=10", m.Port, pki.CA)
	}
	t.Run("client_tls_protocols = tlsv1.3", func(t *testing.T) {
		m := startMux(t, pg, bouncer{Extra: []string{"client_tls_sslmode = require",
			"client_tls_cert_file = " + pki.Cert, "client_tls_key_file = " + pki.Key, "client_tls_protocols = tlsv1.3"}})
		conn, err := connectTLS(url(m), func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		if err == nil {
			_ = conn.Close(context.Background())
		}
		require.Error(t, err, "a TLS 1.2 client was let in with client_tls_protocols = tlsv1.3")
		conn, err = connectTLS(url(m), nil)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
	})
	t.Run("server_tls_protocols", func(t *testing.T) {
		m := startMux(t, pg, bouncer{Extra: []string{"server_tls_sslmode = require", "server_tls_protocols = tlsv1.3"}})
		_, err := tryConnect(m.App(pgtest.AppDB))
		require.Error(t, err, "pgmux logged in over TLS 1.2 with server_tls_protocols = tlsv1.3")
		m = startMux(t, pg, bouncer{Extra: []string{"server_tls_sslmode = require", "server_tls_protocols = tlsv1.2"}})
		conn := connect(t, m.App(pgtest.AppDB))
		require.True(t, serverSSL(t, conn))
	})
	t.Run("a value that is no protocol", func(t *testing.T) {
		path := muxtest.WriteConfig(t, t.TempDir(), "[databases]\n[pgbouncer]\nlisten_port = 6432\nauth_file = userlist.txt\n"+
			"server_tls_protocols = tlsv9\n", "")
		_, err := config.Load(path)
		require.ErrorContains(t, err, "server_tls_protocols")
	})
}

// TestDirectTLS: a client that opens with a TLS ClientHello instead of an SSLRequest
// (sslnegotiation=direct, PostgreSQL 17 libpq and pgx) is served over TLS, as by
// PgBouncer 1.25 and PostgreSQL 17; pgmux read the ClientHello as a startup packet and
// answered in plaintext ("08P01 invalid length of startup packet").
func TestDirectTLS(t *testing.T) {
	pg := pgtest.Start(t)
	pki := newPKI(t)
	m := startMux(t, pg, bouncer{Extra: []string{"client_tls_sslmode = require",
		"client_tls_cert_file = " + pki.Cert, "client_tls_key_file = " + pki.Key}})
	url := fmt.Sprintf("postgres://app:apppass@localhost:%d/app?sslmode=verify-full&sslrootcert=%s&sslnegotiation=direct&connect_timeout=10",
		m.Port, pki.CA)
	conn, err := connectTLS(url, nil)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
	t.Run("without the postgresql ALPN", func(t *testing.T) {
		// PostgreSQL refuses a direct TLS connection that does not name the protocol
		// (ALPN "postgresql"): an HTTPS client pointed at the port is not let in.
		nc, err := tls.Dial("tcp", m.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err == nil {
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = nc.Write([]byte{0, 0, 0, 8, 0, 3, 0, 0})
			if err == nil {
				_, err = nc.Read(make([]byte, 1))
			}
			_ = nc.Close()
		}
		require.Error(t, err)
	})
}

// TestServerTLSNotOnUnixSocket: server_tls_sslmode applies to TCP only, as in PgBouncer
// (and libpq): a database reached through a unix socket logs in without asking for TLS,
// which PostgreSQL never offers there. pgmux asked, and with require (or verify-*) every
// login failed with "server does not support TLS".
func TestServerTLSNotOnUnixSocket(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Databases: []string{fmt.Sprintf("* = host=%s port=%d", pg.SocketDir, pg.Port)},
		Extra: []string{"server_tls_sslmode = require"}})
	conn := connect(t, m.App(pgtest.AppDB))
	require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
}

// TestServerTLSVerifyFullName: verify-full checks the name pgmux dials against the
// server's certificate, by DNS name and by IP address: a certificate naming only
// localhost does for host=localhost, not for host=127.0.0.1; verify-ca takes either.
func TestServerTLSVerifyFullName(t *testing.T) {
	pki := newPKI(t)
	pg := startTLSPostgres(t, pki)
	// Only the DNS name from now on.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pki.ca, &key.PublicKey, pki.caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	pg.WriteDataFile(t, "test-server.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	pg.WriteDataFile(t, "test-server.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	pg.Exec(t, "SELECT pg_reload_conf()")
	time.Sleep(300 * time.Millisecond)
	for _, tc := range []struct {
		host, mode string
		ok         bool
	}{
		{"localhost", "verify-full", true},
		{"127.0.0.1", "verify-full", false},
		{"127.0.0.1", "verify-ca", true},
	} {
		t.Run(tc.host+" "+tc.mode, func(t *testing.T) {
			m := startMux(t, pg, bouncer{Databases: []string{fmt.Sprintf("* = host=%s port=%d", tc.host, pg.Port)},
				Extra: []string{"server_tls_sslmode = " + tc.mode, "server_tls_ca_file = " + pki.CA}})
			conn, err := tryConnect(m.App(pgtest.AppDB))
			if tc.ok {
				require.NoError(t, err)
				defer conn.Close(context.Background())
				require.True(t, serverSSL(t, conn))
				return
			}
			pe := requireCode(t, err, "08P01")
			require.Contains(t, pe.Message, "127.0.0.1")
			require.Contains(t, pe.Hint, "server_tls_sslmode")
		})
	}
}
