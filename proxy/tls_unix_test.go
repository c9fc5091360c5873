//go:build linux

package proxy_test

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestTLSRequiredExceptOnUnixSocket: client_tls_sslmode = require refuses a plaintext
// TCP client but not one on the unix socket, as in PgBouncer ("require SSL except on
// unix socket"): libpq never asks for TLS there, so every local client was refused,
// the console included (the one listener left during a safe shutdown).
func TestTLSRequiredExceptOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSignedCert(t, dir)
	h := startProxy(t, harnessOpts{extra: map[string]string{"unix_socket_dir": dir,
		"client_tls_sslmode": "require", "client_tls_cert_file": cert, "client_tls_key_file": key}})
	_, err := h.tryConnect("app", "app", false)
	require.Equal(t, "28000", sqlState(err), "%v", err)

	nc, err := net.Dial("unix", filepath.Join(dir, ".s.PGSQL.0"))
	require.NoError(t, err)
	defer nc.Close()
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "app", "database": "app"}})
	fe.Send(&pgproto3.Query{String: "SELECT 'local'"})
	require.NoError(t, fe.Flush())
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for ready := 0; ready < 2; {
		m, err := fe.Receive()
		require.NoError(t, err)
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			t.Fatalf("%s %s", m.Code, m.Message)
		case *pgproto3.DataRow:
			got = append(got, string(m.Values[0]))
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	require.Equal(t, []string{"local"}, got)
}
