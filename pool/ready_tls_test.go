package pool_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

// TestCheckConnectLogsNothingWithTLS: Check's SSLRequest probe (a pool at its size, no
// connection given back lately) leaves no line in the log of a server with ssl = on, as
// README says it does not. Closed after the server's 'S', the probe made PostgreSQL log
// "could not accept SSL connection: EOF detected" at every check; it now completes the
// handshake and says goodbye, which PostgreSQL takes as a client that sent nothing.
func TestCheckConnectLogsNothingWithTLS(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartPrivate(t)
	if pg.LogFile == "" {
		t.Skip("needs the server log of a server pgtest started")
	}
	certPEM, keyPEM := selfSigned(t)
	pg.WriteDataFile(t, "probe-server.crt", certPEM)
	pg.WriteDataFile(t, "probe-server.key", keyPEM)
	for _, s := range []string{"ssl = on", "ssl_cert_file = 'probe-server.crt'", "ssl_key_file = 'probe-server.key'"} {
		pg.Exec(t, "ALTER SYSTEM SET "+s)
	}
	pg.Exec(t, "SELECT pg_reload_conf()")
	addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	eventually(t, func() bool { return sslAnswerOf(addr) == 'S' }, "PostgreSQL takes TLS")
	// That look closed after the 'S' and its backend logs so as it ends, which may be
	// after the log's length is read below: wait for its line first.
	eventually(t, func() bool { return strings.Contains(serverLog(t, pg), "could not accept SSL connection") },
		"the look's own line in the server log")

	p := newPool(t, pool.Options{Size: 1, Target: func() *pool.Target { return appTarget(pg) }})
	c, _ := acquire(t, p)
	defer c.Release(false)
	logBefore := len(serverLog(t, pg))
	for range 3 {
		require.NoError(t, p.Check(ctxFor(t, wait)))
	}
	// The backends log as they end, after the probe has gone: a login marks the log's
	// present (its line, if any, comes after the probes').
	pg.Exec(t, "SELECT 1")
	time.Sleep(200 * time.Millisecond)
	added := serverLog(t, pg)[logBefore:]
	require.NotContains(t, added, "could not accept SSL connection")
	require.NotContains(t, added, "could not receive data from client")
}

// sslAnswerOf is the server's answer to an SSLRequest on addr (0: none).
func sslAnswerOf(addr string) byte {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	var ans [1]byte
	if _, err := nc.Write(sslRequest); err != nil {
		return 0
	}
	if _, err := nc.Read(ans[:]); err != nil {
		return 0
	}
	return ans[0]
}

// serverLog reads pg's log.
func serverLog(t *testing.T, pg *pgtest.Server) string {
	t.Helper()
	b, err := os.ReadFile(pg.LogFile)
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), "\r", "")
}

// selfSigned is a certificate and key for localhost and 127.0.0.1, in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
