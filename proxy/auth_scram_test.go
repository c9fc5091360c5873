package proxy_test

import (
	"encoding/base64"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// saslMsg is a SASLInitialResponse or SASLResponse ('p') around body, as sent.
func saslMsg(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{'p'}, uint32(len(body)+4)), body...)
}

// saslInitial is a SASLInitialResponse naming mech with data as its initial response.
func saslInitial(mech, data string) []byte {
	b := binary.BigEndian.AppendUint32(append([]byte(mech), 0), uint32(len(data)))
	return saslMsg(append(b, data...))
}

// TestSCRAMMalformedMessages: a SASLInitialResponse or SASLResponse that does not parse,
// names a mechanism that was not offered or does not carry on the exchange pgmux began
// is a protocol violation (08P01), as PostgreSQL answers (auth-scram.c), for a user in
// auth_file and an unknown one alike; a well-formed proof that does not verify is a
// wrong password (28P01), and an authorization identity, which PostgreSQL does not
// support either, 0A000. pgmux answered every one but the wrong password with 28000.
func TestSCRAMMalformedMessages(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"auth_type": "scram-sha-256"}})
	creds := map[string]config.Credential{"app": {User: "app", Password: "secret"}}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name  string
		first []byte
		final func(nonce string) string // nil: the first message already fails
		code  string
	}{
		{"mechanism not offered", saslInitial("SCRAM-SHA-1", "n,,n=,r=abc"), nil, "08P01"},
		{"PLUS without TLS", saslInitial("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"), nil, "08P01"},
		{"client-first that does not parse", saslInitial("SCRAM-SHA-256", "hello"), nil, "08P01"},
		{"client-first without a nonce", saslInitial("SCRAM-SHA-256", "n,,n="), nil, "08P01"},
		{"length past the data", saslMsg(binary.BigEndian.AppendUint32([]byte("SCRAM-SHA-256\x00"), 100)), nil, "08P01"},
		{"authorization identity", saslInitial("SCRAM-SHA-256", "n,a=admin,n=,r=abc"), nil, "0A000"},
		{"client-final that does not parse", saslInitial("SCRAM-SHA-256", "n,,n=,r=abc"),
			func(string) string { return "hello" }, "08P01"},
		{"nonce not ours", saslInitial("SCRAM-SHA-256", "n,,n=,r=abc"),
			func(string) string { return "c=biws,r=abcdef,p=" + proof }, "08P01"},
		{"binding attribute unlike the header", saslInitial("SCRAM-SHA-256", "n,,n=,r=abc"),
			func(nonce string) string { return "c=eSws,r=" + nonce + ",p=" + proof }, "08P01"},
		{"wrong proof", saslInitial("SCRAM-SHA-256", "n,,n=,r=abc"),
			func(nonce string) string { return "c=biws,r=" + nonce + ",p=" + proof }, "28P01"},
	}
	for _, user := range []string{"app", "ghost"} {
		for _, c := range cases {
			t.Run(user+"/"+c.name, func(t *testing.T) {
				nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port))
				require.NoError(t, err)
				defer nc.Close()
				require.NoError(t, nc.SetDeadline(time.Now().Add(20*time.Second)))
				fe := pgproto3.NewFrontend(nc, nc)
				fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
					Parameters: map[string]string{"user": user, "database": "app"}})
				require.NoError(t, fe.Flush())
				m, err := fe.Receive()
				require.NoError(t, err)
				require.IsType(t, &pgproto3.AuthenticationSASL{}, m)
				_, err = nc.Write(c.first)
				require.NoError(t, err)
				m, err = fe.Receive()
				require.NoError(t, err)
				if c.final != nil {
					cont, ok := m.(*pgproto3.AuthenticationSASLContinue)
					require.True(t, ok, "want AuthenticationSASLContinue, got %#v", m)
					nonce, _, _ := strings.Cut(strings.TrimPrefix(string(cont.Data), "r="), ",")
					_, err = nc.Write(saslMsg([]byte(c.final(nonce))))
					require.NoError(t, err)
					m, err = fe.Receive()
					require.NoError(t, err)
				}
				e, ok := m.(*pgproto3.ErrorResponse)
				require.True(t, ok, "want an ErrorResponse, got %#v", m)
				require.Equal(t, "FATAL", e.Severity)
				require.Equal(t, c.code, e.Code, e.Message)
				_, err = fe.Receive()
				require.Error(t, err, "the connection stays open after the FATAL")
			})
		}
	}
}
