package faults

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// testPKI is a CA and a server certificate for localhost / 127.0.0.1 / ::1, written as PEM.
type testPKI struct {
	Dir                    string
	CA, Cert, Key          string // file paths
	CAPEM, CertPEM, KeyPEM []byte
	ca                     *x509.Certificate
	caKey                  *ecdsa.PrivateKey
}

func newPKI(t testing.TB) *testPKI { return newPKIOn(t, elliptic.P256()) }

// newPKIOn is newPKI with a CA key on curve: its signatures use the curve's hash
// (ECDSA with SHA-384 on P-384).
func newPKIOn(t testing.TB, curve elliptic.Curve) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(curve, rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgmux test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	p := &testPKI{Dir: t.TempDir(),
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), ca: ca, caKey: caKey}
	p.CA, p.Cert, p.Key = filepath.Join(p.Dir, "ca.crt"), filepath.Join(p.Dir, "server.crt"), filepath.Join(p.Dir, "server.key")
	require.NoError(t, os.WriteFile(p.CA, p.CAPEM, 0o644))
	require.NoError(t, os.WriteFile(p.Cert, p.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(p.Key, p.KeyPEM, 0o600))
	return p
}

// clientCert issues a client certificate for cn signed by the PKI's CA and returns the
// paths of the certificate and its key.
func (p *testPKI) clientCert(t testing.TB, cn string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	dir := t.TempDir()
	cert, key = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return cert, key
}

// startCertMux starts pgmux with auth_type = cert and client_tls_sslmode = mode; its own
// login to PostgreSQL takes the app user's password from the auth file.
func startCertMux(t *testing.T, mode string) (*pgtest.Server, *testPKI, *mux) {
	pg := pgtest.Start(t)
	pki := newPKI(t)
	return pg, pki, startCertMuxOn(t, pg, pki, mode, map[string]string{pgtest.AppUser: pgtest.AppPassword})
}

// startCertMuxOn is startCertMux on pg and pki, with users in the auth file and more
// [pgbouncer] lines.
func startCertMuxOn(t *testing.T, pg *pgtest.Server, pki *testPKI, mode string, users map[string]string, more ...string) *mux {
	return startMux(t, pg, bouncer{AuthType: "cert", Users: users,
		Extra: append([]string{"client_tls_sslmode = " + mode, "client_tls_cert_file = " + pki.Cert,
			"client_tls_key_file = " + pki.Key, "client_tls_ca_file = " + pki.CA}, more...)})
}

// TestCertNeedsAKnownUser: under auth_type = cert the user must be in auth_file, or found
// by auth_query, as PgBouncer's login_via_cert requires (a user it does not find fails
// with "certificate authentication failed"), whatever certificate the client shows; the
// others get FATAL 28000. pgmux let in anyone with a certificate from the CA naming the
// user: with an auth_file listing only app, a certificate for postgres logged in to
// PostgreSQL as its superuser.
func TestCertNeedsAKnownUser(t *testing.T) {
	pg := pgtest.Start(t)
	pki := newPKI(t)
	login := func(m *mux, user string) (*pgx.Conn, error) {
		cert, key := pki.clientCert(t, user)
		return tryConnect(fmt.Sprintf("postgres://%s@localhost:%d/%s?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s&connect_timeout=10",
			user, m.Port, pgtest.AppDB, pki.CA, cert, key))
	}
	check := func(t *testing.T, m *mux, known, unknown string) {
		conn, err := login(m, known)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
		_, err = login(m, unknown)
		pe := requireCode(t, err, "28000")
		require.Equal(t, "FATAL", pe.Severity)
		require.Equal(t, fmt.Sprintf("certificate authentication failed for user %q", unknown), pe.Message)
	}
	t.Run("auth_file", func(t *testing.T) {
		m := startCertMuxOn(t, pg, pki, "verify-full", map[string]string{pgtest.AppUser: pgtest.AppPassword})
		check(t, m, pgtest.AppUser, pgtest.SuperUser)
	})
	t.Run("auth_query", func(t *testing.T) {
		// app is not in auth_file, but auth_query finds it; no_such_role is nowhere.
		m := startCertMuxOn(t, pg, pki, "verify-full", map[string]string{pgtest.SuperUser: "unused"},
			"auth_user = "+pgtest.SuperUser)
		check(t, m, pgtest.AppUser, "no_such_role")
	})
}

// TestCertAuth: auth_type = cert logs a client in by the common name of its verified
// certificate (no password asked), as PgBouncer does; a certificate for another user, no
// certificate, one from another CA or a connection without TLS is refused with 28000, or
// by the TLS handshake.
func TestCertAuth(t *testing.T) {
	pg, pki, m := startCertMux(t, "verify-full")
	appCert, appKey := pki.clientCert(t, pgtest.AppUser)
	url := func(user, cert, key string) string {
		u := fmt.Sprintf("postgres://%s@localhost:%d/app?sslmode=verify-full&sslrootcert=%s&connect_timeout=10",
			user, m.Port, pki.CA)
		if cert != "" {
			u += "&sslcert=" + cert + "&sslkey=" + key
		}
		return u
	}
	t.Run("pgx with the user's certificate", func(t *testing.T) {
		conn := connect(t, url(pgtest.AppUser, appCert, appKey))
		ctx, cancel := ctxT()
		defer cancel()
		var user string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
		require.Equal(t, pgtest.AppUser, user)
	})
	t.Run("psql with the user's certificate", func(t *testing.T) {
		psql := pg.RequireBin(t, "psql")
		out, err := runPsql(t, psql, fmt.Sprintf("host=localhost port=%d user=%s dbname=app sslmode=verify-full "+
			"sslrootcert=%s sslcert=%s sslkey=%s", m.Port, pgtest.AppUser, pki.CA, appCert, appKey), "SELECT 'by cert'")
		require.NoError(t, err, out)
		require.Contains(t, out, "by cert")
	})
	t.Run("certificate of another user", func(t *testing.T) {
		otherCert, otherKey := pki.clientCert(t, "mallory")
		_, err := tryConnect(url(pgtest.AppUser, otherCert, otherKey))
		pe := requireCode(t, err, "28000")
		require.Contains(t, pe.Message, `certificate authentication failed for user "app"`)
	})
	t.Run("no certificate", func(t *testing.T) {
		_, err := tryConnect(url(pgtest.AppUser, "", ""))
		require.Error(t, err, "verify-full asks for a certificate: the handshake fails without one")
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		strangerCert, strangerKey := newPKI(t).clientCert(t, pgtest.AppUser)
		_, err := tryConnect(url(pgtest.AppUser, strangerCert, strangerKey))
		require.Error(t, err)
	})
	t.Run("without TLS", func(t *testing.T) {
		_, err := tryConnect(fmt.Sprintf("postgres://%s@127.0.0.1:%d/app?sslmode=disable&connect_timeout=10",
			pgtest.AppUser, m.Port))
		requireCode(t, err, "28000")
	})
}

// TestCertAuthOptionalCertificate: with client_tls_sslmode = require the handshake takes
// a client without a certificate, and auth_type = cert then refuses it in words.
func TestCertAuthOptionalCertificate(t *testing.T) {
	_, pki, m := startCertMux(t, "require")
	_, err := tryConnect(fmt.Sprintf("postgres://%s@localhost:%d/app?sslmode=require&connect_timeout=10",
		pgtest.AppUser, m.Port))
	pe := requireCode(t, err, "28000")
	require.Contains(t, pe.Message, "valid client certificate")
	cert, key := pki.clientCert(t, pgtest.AppUser)
	conn := connect(t, fmt.Sprintf("postgres://%s@localhost:%d/app?sslmode=require&sslcert=%s&sslkey=%s&connect_timeout=10",
		pgtest.AppUser, m.Port, cert, key))
	require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
}

func TestClientTLS(t *testing.T) {
	pg := pgtest.Start(t)
	pki := newPKI(t)
	m := startMux(t, pg, bouncer{AuthType: "scram-sha-256",
		Users: map[string]string{pgtest.AppUser: pgtest.AppPassword},
		Extra: []string{"client_tls_sslmode = require", "client_tls_cert_file = " + pki.Cert,
			"client_tls_key_file = " + pki.Key, "max_packet_size = 10000"}})
	base := func(host, mode string) string {
		return fmt.Sprintf("postgres://app:apppass@%s:%d/app?sslmode=%s&sslrootcert=%s&connect_timeout=10",
			host, m.Port, mode, pki.CA)
	}
	for _, tc := range []struct{ host, mode string }{
		{"127.0.0.1", "require"}, {"127.0.0.1", "verify-ca"}, {"localhost", "verify-full"}, {"127.0.0.1", "verify-full"},
	} {
		t.Run(tc.mode+" "+tc.host, func(t *testing.T) {
			conn := connect(t, base(tc.host, tc.mode))
			require.True(t, conn.PgConn().Conn() != nil)
			require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))
		})
	}
	t.Run("plaintext refused", func(t *testing.T) {
		_, err := tryConnect(base("127.0.0.1", "disable"))
		pe := requireCode(t, err, "28000")
		require.Contains(t, pe.Message, "SSL required")
	})
	t.Run("wrong CA refused by the client", func(t *testing.T) {
		other := newPKI(t)
		_, err := tryConnect(fmt.Sprintf("postgres://app:apppass@localhost:%d/app?sslmode=verify-full&sslrootcert=%s", m.Port, other.CA))
		require.Error(t, err)
	})
	t.Run("channel binding with psql", func(t *testing.T) {
		psql := pg.RequireBin(t, "psql")
		out, err := runPsql(t, psql, fmt.Sprintf("host=localhost port=%d user=app password=apppass dbname=app "+
			"sslmode=verify-full sslrootcert=%s channel_binding=require", m.Port, pki.CA), "SELECT 'bound'")
		require.NoError(t, err, out)
		require.Contains(t, out, "bound")
	})
	t.Run("an unknown user is offered channel binding too", func(t *testing.T) {
		// The mechanisms offered must not tell unknown users from known ones: on TLS a
		// known user is offered SCRAM-SHA-256-PLUS, and so is an unknown one, whose
		// exchange then fails as a wrong password does.
		psql := pg.RequireBin(t, "psql")
		out, err := runPsql(t, psql, fmt.Sprintf("host=localhost port=%d user=ghost password=guess dbname=app "+
			"sslmode=verify-full sslrootcert=%s channel_binding=require", m.Port, pki.CA), "SELECT 1")
		require.Error(t, err)
		require.NotContains(t, out, "channel binding")
		require.Contains(t, out, "authentication failed", out)
	})
	t.Run("max_packet_size holds inside TLS", func(t *testing.T) {
		conn := connect(t, base("127.0.0.1", "require"))
		ctx, cancel := ctxT()
		defer cancel()
		_, err := conn.Exec(ctx, "SELECT '"+strings.Repeat("x", 20000)+"'", pgxSimple)
		require.Error(t, err, "a message over max_packet_size went through inside TLS")
		if code := pgCode(err); code != "" { // pgmux may close before the client reads its error
			require.Equal(t, "08P01", code)
		}
		require.True(t, conn.IsClosed() || pgCode(err) == "08P01")
	})
}

// TestChannelBindingSHA384Certificate: SCRAM-SHA-256-PLUS with a server certificate
// signed with ECDSA and SHA-384. The binding data hashes the certificate with its
// signature's hash (RFC 5929), as libpq does; pgmux used SHA-256 whatever the
// signature, and psql's channel_binding=require (and prefer, its default, which picks
// PLUS whenever it is offered) failed with "channel binding check failed".
func TestChannelBindingSHA384Certificate(t *testing.T) {
	pg := pgtest.Start(t)
	pki := newPKIOn(t, elliptic.P384())
	require.Equal(t, x509.ECDSAWithSHA384, func() x509.SignatureAlgorithm {
		block, _ := pem.Decode(pki.CertPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		return cert.SignatureAlgorithm
	}())
	m := startMux(t, pg, bouncer{AuthType: "scram-sha-256",
		Users: map[string]string{pgtest.AppUser: pgtest.AppPassword},
		Extra: []string{"client_tls_sslmode = require", "client_tls_cert_file = " + pki.Cert,
			"client_tls_key_file = " + pki.Key}})
	psql := pg.RequireBin(t, "psql")
	for _, cb := range []string{"require", "prefer"} {
		out, err := runPsql(t, psql, fmt.Sprintf("host=localhost port=%d user=app password=apppass dbname=app "+
			"sslmode=verify-full sslrootcert=%s channel_binding=%s", m.Port, pki.CA, cb), "SELECT 'bound'")
		require.NoError(t, err, "channel_binding=%s: %s", cb, out)
		require.Contains(t, out, "bound")
	}
}

func runPsql(t testing.TB, psql, conninfo, sql string) (string, error) {
	t.Helper()
	ctx, cancel := ctxT()
	defer cancel()
	cmd := osexec.CommandContext(ctx, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestServerTLSVerifyFull turns ssl on in a private PostgreSQL and has pgmux log in
// with server_tls_sslmode = verify-full.
func TestServerTLSVerifyFull(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	pki := newPKI(t)
	pg.WriteDataFile(t, "test-server.crt", pki.CertPEM)
	pg.WriteDataFile(t, "test-server.key", pki.KeyPEM)
	pg.Exec(t, "ALTER SYSTEM SET ssl = on")
	pg.Exec(t, "ALTER SYSTEM SET ssl_cert_file = 'test-server.crt'")
	pg.Exec(t, "ALTER SYSTEM SET ssl_key_file = 'test-server.key'")
	pg.Exec(t, "SELECT pg_reload_conf()")
	time.Sleep(300 * time.Millisecond)
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		t.Run(host, func(t *testing.T) {
			m := startMux(t, pg, bouncer{
				Databases: []string{fmt.Sprintf("* = host=%s port=%d", host, pg.Port)},
				Extra:     []string{"server_tls_sslmode = verify-full", "server_tls_ca_file = " + pki.CA}})
			conn := connect(t, m.App(pgtest.AppDB))
			ctx, cancel := ctxT()
			defer cancel()
			var ssl bool
			require.NoError(t, conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
			require.True(t, ssl, "the server connection is not encrypted")
		})
	}
	t.Run("untrusted CA refused", func(t *testing.T) {
		other := newPKI(t)
		m := startMux(t, pg, bouncer{Extra: []string{"server_tls_sslmode = verify-full", "server_tls_ca_file = " + other.CA}})
		_, err := tryConnect(m.App(pgtest.AppDB))
		require.Error(t, err)
		require.Contains(t, err.Error(), "certificate")
	})
}

func TestAdminConsoleRefusesOthers(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{})
	_, err := tryConnect(m.URL(pgtest.AppUser, pgtest.AppPassword, "pgbouncer"))
	pe := requireCode(t, err, "28000")
	require.Contains(t, pe.Message, "not allowed")
	_, err = tryConnect(m.URL("admin", "wrong", "pgbouncer"))
	requireCode(t, err, "28P01")
	conn := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	ctx, cancel := ctxT()
	defer cancel()
	_, err = conn.Exec(ctx, "SHOW POOLS", pgxSimple)
	require.NoError(t, err)
}

// TestPasswordsStaySecret logs in with right and wrong passwords and requires that no
// password appears in pgmux's log or on the admin console.
func TestPasswordsStaySecret(t *testing.T) {
	pg := pgtest.Start(t)
	const dbSecret = "DbLinePassw0rd-7731"
	const wrong = "Wr0ngGuess-55120"
	m := startMux(t, pg, bouncer{
		Databases: []string{fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port),
			fmt.Sprintf("withpw = host=%s port=%d dbname=app user=app password=%s", pg.Host, pg.Port, dbSecret)},
		Extra: []string{"log_connections = 1", "log_disconnections = 1"}})
	_, err := tryConnect(m.URL(pgtest.AppUser, wrong, pgtest.AppDB))
	requireCode(t, err, "28P01")
	c := connect(t, m.App(pgtest.AppDB))
	exec(t, c, "SELECT 1")
	c2 := connect(t, m.App("withpw"))
	exec(t, c2, "SELECT 1")
	admin := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	var console strings.Builder
	for _, q := range []string{"SHOW CONFIG", "SHOW DATABASES", "SHOW USERS", "SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS"} {
		ctx, cancel := ctxT()
		rows, err := admin.Query(ctx, q, pgxSimple)
		require.NoError(t, err, q)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			fmt.Fprintln(&console, vals...)
		}
		require.NoError(t, rows.Err())
		cancel()
	}
	m.Srv.Close()
	logText, err := os.ReadFile(m.LogPath)
	require.NoError(t, err)
	require.Contains(t, string(logText), "password authentication failed", "the failed login was not logged")
	for _, secret := range []string{pgtest.AppPassword, wrong, dbSecret, "adminpass"} {
		require.NotContains(t, string(logText), secret, "a password is in the log")
		require.NotContains(t, console.String(), secret, "a password is on the admin console")
	}
}

// TestAuthQuery logs in users that are in the database but not in auth_file.
func TestAuthQuery(t *testing.T) {
	pg := pgtest.Start(t)
	role := fmt.Sprintf("aq_%d", time.Now().UnixNano()%1e9)
	pg.Exec(t, fmt.Sprintf("SET password_encryption = 'scram-sha-256'; CREATE ROLE %s LOGIN PASSWORD 'aqpass'", role))
	t.Cleanup(func() { pg.Exec(t, "DROP ROLE IF EXISTS "+role) })
	m := startMux(t, pg, bouncer{
		Users: map[string]string{"postgres": "unused"},
		Extra: []string{"auth_user = postgres"}})
	for _, u := range []struct{ user, pass string }{
		{role, "aqpass"}, {pgtest.ScramUser, pgtest.ScramPassword}, {pgtest.MD5User, pgtest.MD5Password},
	} {
		t.Run(u.user, func(t *testing.T) {
			conn := connect(t, m.URL(u.user, u.pass, pgtest.AppDB))
			ctx, cancel := ctxT()
			defer cancel()
			var who string
			require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&who))
			require.Equal(t, u.user, who)
			_, err := tryConnect(m.URL(u.user, "not-"+u.pass, pgtest.AppDB))
			requireCode(t, err, "28P01")
		})
	}
	t.Run("unknown role", func(t *testing.T) {
		_, err := tryConnect(m.URL("no_such_role", "x", pgtest.AppDB))
		requireCode(t, err, "28P01")
	})
}

// TestTrustNeedsAKnownUser: under auth_type = trust the user must still be in auth_file,
// or found by auth_query, as PgBouncer requires ("the user name must still exist in the
// auth_file"); anyone else gets FATAL 28000 "trust" authentication failed. pgmux let any
// name in: with an auth_file listing only app, a client logged in to PostgreSQL as
// postgres, its superuser, with no password at all.
func TestTrustNeedsAKnownUser(t *testing.T) {
	pg := pgtest.Start(t)
	check := func(t *testing.T, m *mux, known, unknown string) {
		conn := connect(t, m.URL(known, "whatever", pgtest.AppDB))
		ctx, cancel := ctxT()
		defer cancel()
		var who string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&who))
		require.Equal(t, known, who)
		_, err := tryConnect(m.URL(unknown, "", pgtest.AppDB))
		pe := requireCode(t, err, "28000")
		require.Equal(t, "FATAL", pe.Severity)
		require.Equal(t, fmt.Sprintf("%q authentication failed for user %q", "trust", unknown), pe.Message)
	}
	t.Run("auth_file", func(t *testing.T) {
		m := startMux(t, pg, bouncer{AuthType: "trust"})
		check(t, m, pgtest.AppUser, pgtest.SuperUser)
	})
	t.Run("auth_query", func(t *testing.T) {
		// app is not in auth_file, but auth_query finds it; no_such_role is nowhere.
		m := startMux(t, pg, bouncer{AuthType: "trust", Users: map[string]string{pgtest.SuperUser: "unused"},
			Extra: []string{"auth_user = " + pgtest.SuperUser}})
		check(t, m, pgtest.AppUser, "no_such_role")
	})
}

// TestHBA checks auth_hba_file: by address, user and method.
func TestHBA(t *testing.T) {
	pg := pgtest.Start(t)
	dir := t.TempDir()
	hba := filepath.Join(dir, "hba.conf")
	require.NoError(t, os.WriteFile(hba, []byte(`# pgmux test rules
host  all  app        127.0.0.2/32     reject
host  all  app        127.0.0.1/32     scram-sha-256
host  all  md5user    127.0.0.1 255.255.255.255  trust
host  app  plainuser  127.0.0.0/8      password
host  postgres  postgres  127.0.0.1/32  trust
hostssl all all       all              md5
`), 0o644))
	m := startMux(t, pg, bouncer{AuthType: "hba",
		Users: map[string]string{pgtest.AppUser: pgtest.AppPassword, pgtest.MD5User: pgtest.MD5Password,
			pgtest.PlainUser: pgtest.PlainPassword, pgtest.ScramUser: pgtest.ScramPassword},
		Extra: []string{"auth_hba_file = " + hba}})
	from := func(src, rawURL string) (*pgx.Conn, error) {
		cfg, err := pgx.ParseConfig(rawURL)
		require.NoError(t, err)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
		cfg.DialFunc = d.DialContext
		ctx, cancel := ctxT()
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
		}
		return c, err
	}
	_, err := from("127.0.0.1", m.App(pgtest.AppDB))
	require.NoError(t, err, "app from 127.0.0.1 uses scram")
	_, err = from("127.0.0.1", m.URL(pgtest.AppUser, "bad", pgtest.AppDB))
	requireCode(t, err, "28P01")
	_, err = from("127.0.0.2", m.App(pgtest.AppDB))
	pe := requireCode(t, err, "28000")
	require.Contains(t, pe.Message, "rejects")
	_, err = from("127.0.0.1", m.URL(pgtest.MD5User, "anything", pgtest.AppDB))
	require.NoError(t, err, "md5user is trusted from 127.0.0.1")
	_, err = from("127.0.0.1", m.URL(pgtest.PlainUser, pgtest.PlainPassword, pgtest.AppDB))
	require.NoError(t, err, "plainuser may use a password for app")
	_, err = from("127.0.0.1", m.URL(pgtest.PlainUser, pgtest.PlainPassword, "postgres"))
	pe = requireCode(t, err, "28000")
	require.Contains(t, pe.Message, "no auth_hba_file entry")
	_, err = from("127.0.0.1", m.URL(pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB))
	requireCode(t, err, "28000") // only hostssl would match, and this is plaintext
	// A trust rule still needs the user in auth_file (TestTrustNeedsAKnownUser).
	_, err = from("127.0.0.1", m.URL(pgtest.SuperUser, "", "postgres"))
	pe = requireCode(t, err, "28000")
	require.Contains(t, pe.Message, `"trust" authentication failed`)
}
