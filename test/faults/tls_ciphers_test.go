package faults

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// onlySuite has a pgx client offer TLS 1.2 with suite alone.
func onlySuite(suite uint16) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{suite}
	}
}

// TestTLSCiphers: client_tls_ciphers and server_tls_ciphers choose the TLS 1.2 cipher
// suites pgmux accepts from clients and offers to servers, in OpenSSL's syntax, as in
// PgBouncer; pgmux accepted both and applied neither (Go's defaults whatever they said).
// A value that names no suite is refused at RELOAD, and the settings in force stay.
func TestTLSCiphers(t *testing.T) {
	pki := newPKI(t)
	// The server speaks TLS 1.2 with one suite.
	pg := startTLSPostgres(t, pki, "ssl_max_protocol_version = 'TLSv1.2'", "ssl_ciphers = 'ECDHE-ECDSA-AES128-GCM-SHA256'")
	url := func(m *mux) string {
		return fmt.Sprintf("postgres://app:apppass@localhost:%d/app?sslmode=verify-full&sslrootcert=%s&connect_timeout=10", m.Port, pki.CA)
	}
	// try logs in with edit's TLS configuration, runs a statement, and says how it went.
	try := func(m *mux, edit func(*tls.Config)) error {
		conn, err := connectTLS(url(m), edit)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		ctx, cancel := ctxT()
		defer cancel()
		_, err = conn.Exec(ctx, "SELECT 1")
		return err
	}
	aes128 := onlySuite(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	aes256 := onlySuite(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)

	t.Run("client_tls_ciphers", func(t *testing.T) {
		m := startMux(t, pg, bouncer{Extra: []string{"client_tls_sslmode = require",
			"client_tls_cert_file = " + pki.Cert, "client_tls_key_file = " + pki.Key,
			"client_tls_ciphers = ECDHE+AESGCM:!AES256"}})
		err := try(m, aes256)
		require.Error(t, err, "a client offering only an excluded suite was let in")
		require.Contains(t, err.Error(), "handshake failure")
		require.NoError(t, try(m, aes128))
		// TLS 1.3's suites are not chosen by it, as in PgBouncer (and Go lets no one
		// choose them).
		require.NoError(t, try(m, func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }))

		for _, bad := range []string{"ECDHE-ECDSA-AES256-GCM-SHA384:NOT-A-CIPHER", "aNULL:eNULL"} {
			err := reload(t, m, "client_tls_ciphers = "+bad)
			require.Error(t, err, "RELOAD took client_tls_ciphers = %s", bad)
			require.Contains(t, err.Error(), "client_tls_ciphers")
			require.Error(t, try(m, aes256), "the settings in force stay")
			require.NoError(t, try(m, aes128))
		}
		require.NoError(t, reload(t, m, "client_tls_ciphers = ECDHE-ECDSA-AES256-GCM-SHA384"))
		require.NoError(t, try(m, aes256))
		require.Error(t, try(m, aes128))
	})

	t.Run("server_tls_ciphers", func(t *testing.T) {
		m := startMux(t, pg, bouncer{Extra: []string{"server_tls_sslmode = require", "server_tls_ciphers = ECDHE+AESGCM:!AES128"}})
		_, err := tryConnect(m.App(pgtest.AppDB))
		require.Error(t, err, "pgmux logged in with a suite server_tls_ciphers excludes")

		m = startMux(t, pg, bouncer{Extra: []string{"server_tls_sslmode = require", "server_tls_ciphers = HIGH:!AES256:!CHACHA20"}})
		conn := connect(t, m.App(pgtest.AppDB))
		ctx, cancel := ctxT()
		defer cancel()
		var cipher string
		require.NoError(t, conn.QueryRow(ctx, "SELECT cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&cipher))
		require.Equal(t, "ECDHE-ECDSA-AES128-GCM-SHA256", cipher)

		require.Error(t, reload(t, m, "server_tls_ciphers = CAMELLIA"))
		require.True(t, serverSSL(t, conn), "the settings in force stay")
	})
}

// TestChannelBindingAfterCertReload: SCRAM-SHA-256-PLUS binds to the certificate the
// client's TLS handshake was sent. pgmux hashed the one configured when the SCRAM
// exchange ran: a RELOAD to another client_tls_cert_file between a client's handshake and
// its login made the binding differ, and the login failed ("channel binding check
// failed"), though nothing was wrong with the client.
func TestChannelBindingAfterCertReload(t *testing.T) {
	pg := pgtest.Start(t)
	pki, next := newPKI(t), newPKI(t)
	m := startMux(t, pg, bouncer{AuthType: "scram-sha-256",
		Users: map[string]string{pgtest.AppUser: pgtest.AppPassword},
		Extra: []string{"client_tls_sslmode = require", "client_tls_cert_file = " + pki.Cert,
			"client_tls_key_file = " + pki.Key}})
	url := func(ca string) string {
		return fmt.Sprintf("postgres://app:apppass@127.0.0.1:%d/app?sslmode=verify-full&sslrootcert=%s&channel_binding=require&connect_timeout=10",
			m.Port, ca)
	}
	cfg, err := pgx.ParseConfig(url(pki.CA))
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	reloads := 0
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		// The handshake is over, with pki's certificate; the startup packet and the SCRAM
		// exchange are still to come. pgmux now loads next's.
		reloads++
		if err := reload(t, m, "client_tls_cert_file = "+next.Cert, "client_tls_key_file = "+next.Key); err != nil {
			return nil, err
		}
		return conn, nil
	}
	ctx, cancel := ctxT()
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err, "a login whose TLS handshake came before a RELOAD to another certificate")
	defer conn.Close(context.Background())
	require.Equal(t, 1, reloads)
	require.EqualValues(t, 1, queryInt(t, conn, "SELECT 1"))

	// The RELOAD took: new clients get next's certificate, and bind to it.
	conn2, err := tryConnect(url(next.CA))
	require.NoError(t, err)
	defer conn2.Close(context.Background())
	_, err = tryConnect(url(pki.CA))
	require.Error(t, err, "the former certificate is still served")
}
