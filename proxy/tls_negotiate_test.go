//go:build linux

package proxy_test

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

var (
	sslRequest    = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
	gssencRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}
)

// startupBytes is a protocol 3.0 StartupMessage for user app and database app.
func startupBytes() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), 3<<16)
	b = append(b, "user\x00app\x00database\x00app\x00\x00"...)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// readFatal reads what pgmux answers on r: it must be an ErrorResponse of severity FATAL
// (not a one-byte answer to a negotiation request), followed by the end of the
// connection.
func readFatal(t *testing.T, r io.Reader) *pgproto3.ErrorResponse {
	t.Helper()
	var hdr [5]byte
	_, err := io.ReadFull(r, hdr[:])
	require.NoError(t, err, "want an ErrorResponse")
	require.Equal(t, byte('E'), hdr[0], "want an ErrorResponse, got %q", hdr[:])
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	_, err = io.ReadFull(r, body)
	require.NoError(t, err)
	var e pgproto3.ErrorResponse
	require.NoError(t, e.Decode(body))
	require.Equal(t, "FATAL", e.Severity)
	n, err := r.Read(make([]byte, 1))
	require.Zero(t, n, "pgmux sent more after the FATAL")
	require.Error(t, err, "the connection stays open after the FATAL")
	return &e
}

// TestNegotiationRefusals: bytes a client sends after an SSLRequest or a GSSENCRequest
// without waiting for the answer were not encrypted (the class of CVE-2021-23214): as
// PostgreSQL and PgBouncer do, the client gets FATAL 08P01 and its bytes are not read,
// whether pgmux would answer 'S' (it closed the client without a word) or 'N' (it read
// them as the StartupMessage and logged the client in). An SSLRequest inside TLS ends the
// client with FATAL 08P01 too (PgBouncer closes it); pgmux answered 'N' inside TLS and
// went on.
func TestNegotiationRefusals(t *testing.T) {
	cert, key := selfSignedCert(t, t.TempDir())
	plain := startProxy(t, harnessOpts{})
	withTLS := startProxy(t, harnessOpts{extra: map[string]string{
		"client_tls_sslmode": "allow", "client_tls_cert_file": cert, "client_tls_key_file": key}})
	dial := func(t *testing.T, h *harness) net.Conn {
		nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port))
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
		return nc
	}
	for _, c := range []struct {
		name    string
		h       *harness
		request []byte
		message string
	}{
		{"SSLRequest, TLS on", withTLS, sslRequest, "received unencrypted data after SSL request"},
		{"SSLRequest, TLS off", plain, sslRequest, "received unencrypted data after SSL request"},
		{"GSSENCRequest", plain, gssencRequest, "received unencrypted data after GSSAPI encryption request"},
	} {
		t.Run(c.name+", then a StartupMessage at once", func(t *testing.T) {
			nc := dial(t, c.h)
			_, err := nc.Write(append(append([]byte(nil), c.request...), startupBytes()...))
			require.NoError(t, err)
			e := readFatal(t, nc)
			require.Equal(t, "08P01", e.Code)
			require.Equal(t, c.message, e.Message)
		})
	}
	t.Run("SSLRequest inside TLS", func(t *testing.T) {
		nc := dial(t, withTLS)
		_, err := nc.Write(sslRequest)
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(nc, b[:])
		require.NoError(t, err)
		require.Equal(t, byte('S'), b[0])
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
		require.NoError(t, tc.Handshake())
		_, err = tc.Write(sslRequest)
		require.NoError(t, err)
		e := readFatal(t, tc)
		require.Equal(t, "08P01", e.Code)
	})
	t.Run("SSLRequest, then a StartupMessage after the answer", func(t *testing.T) {
		nc := dial(t, plain)
		_, err := nc.Write(sslRequest)
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(nc, b[:])
		require.NoError(t, err)
		require.Equal(t, byte('N'), b[0])
		fe := pgproto3.NewFrontend(nc, nc)
		_, err = nc.Write(startupBytes())
		require.NoError(t, err)
		for {
			m, err := fe.Receive()
			require.NoError(t, err)
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("%s %s", e.Code, e.Message)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	})
}
