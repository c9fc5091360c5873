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
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/auth"
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

// saslBegin opens a raw connection to addr (closed at cleanup), sends a StartupMessage
// for user and db and requires AuthenticationSASL in answer.
func saslBegin(t *testing.T, addr, user, db string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(20*time.Second)))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": db}})
	require.NoError(t, fe.Flush())
	m, err := fe.Receive()
	require.NoError(t, err)
	require.IsType(t, &pgproto3.AuthenticationSASL{}, m)
	return nc, fe
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
				nc, fe := saslBegin(t, "127.0.0.1:"+strconv.Itoa(h.port), user, "app")
				_, err := nc.Write(c.first)
				require.NoError(t, err)
				m, err := fe.Receive()
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

// saslNoInitial is a SASLInitialResponse naming mech without an initial response: its
// length is -1 (then nothing, or trailing bytes that make it malformed).
func saslNoInitial(mech string, trailing ...byte) []byte {
	b := binary.BigEndian.AppendUint32(append([]byte(mech), 0), 0xFFFFFFFF)
	return saslMsg(append(b, trailing...))
}

// scramWithoutInitialResponse logs in to addr as user over a raw connection with a
// SASLInitialResponse that carries no initial response (length -1), then the
// client-first-message in a SASLResponse, as PostgreSQL's protocol allows (auth-sasl.c
// answers the missing response with an empty challenge), and returns the message that
// ends the exchange: AuthenticationOk, or the ErrorResponse.
func scramWithoutInitialResponse(t *testing.T, addr, user, password string) pgproto3.BackendMessage {
	t.Helper()
	nc, fe := saslBegin(t, addr, user, pgtest.AppDB)
	_, err := nc.Write(saslNoInitial(auth.MechanismSCRAM))
	require.NoError(t, err)
	m, err := fe.Receive()
	require.NoError(t, err)
	empty, ok := m.(*pgproto3.AuthenticationSASLContinue)
	require.True(t, ok, "want an empty AuthenticationSASLContinue, got %#v", m)
	require.Empty(t, empty.Data)
	c := auth.NewClientSCRAM(user, password)
	_, err = nc.Write(saslMsg(c.First()))
	require.NoError(t, err)
	m, err = fe.Receive()
	require.NoError(t, err)
	cont, ok := m.(*pgproto3.AuthenticationSASLContinue)
	require.True(t, ok, "want the server-first-message, got %#v", m)
	final, err := c.Final(cont.Data)
	require.NoError(t, err)
	_, err = nc.Write(saslMsg(final))
	require.NoError(t, err)
	m, err = fe.Receive()
	require.NoError(t, err)
	if fin, ok := m.(*pgproto3.AuthenticationSASLFinal); ok {
		require.NoError(t, c.Verify(fin.Data))
		m, err = fe.Receive()
		require.NoError(t, err)
	}
	return m
}

// TestSCRAMWithoutInitialResponse: a SASLInitialResponse may leave out the initial
// response (length -1); PostgreSQL then sends an empty AuthenticationSASLContinue and
// reads the client-first-message in a SASLResponse. pgmux answers the same, checked
// against PostgreSQL itself: the right password logs in, a wrong one (or an unknown
// user) fails as a wrong password does (28P01); a length of -1 followed by bytes, or a
// mechanism not offered, is a protocol violation (08P01). pgmux refused the length -1
// itself with 08P01 "invalid SASLInitialResponse length".
func TestSCRAMWithoutInitialResponse(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"auth_type": "scram-sha-256"}})
	creds := map[string]config.Credential{"app": {User: "app", Password: "secret"}}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	pgmux := "127.0.0.1:" + strconv.Itoa(h.port)
	postgres := net.JoinHostPort(h.pg.Host, strconv.Itoa(h.pg.Port))

	for _, tc := range []struct {
		name, addr, user, password string
		unknown                    bool // try a user pgmux does not know (PostgreSQL's test roles not in its hba are trusted)
	}{
		{"PostgreSQL", postgres, pgtest.ScramUser, pgtest.ScramPassword, false},
		{"pgmux", pgmux, "app", "secret", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := scramWithoutInitialResponse(t, tc.addr, tc.user, tc.password)
			require.IsType(t, &pgproto3.AuthenticationOk{}, m)
			bads := []struct{ user, password string }{{tc.user, "wrong"}}
			if tc.unknown {
				bads = append(bads, struct{ user, password string }{"ghost", "guess"})
			}
			for _, bad := range bads {
				m := scramWithoutInitialResponse(t, tc.addr, bad.user, bad.password)
				e, ok := m.(*pgproto3.ErrorResponse)
				require.True(t, ok, "%s: want an ErrorResponse, got %#v", bad.user, m)
				require.Equal(t, "28P01", e.Code, "%s: %s", bad.user, e.Message)
			}
		})
	}

	for _, c := range []struct {
		name string
		msg  []byte
	}{
		{"length -1 with bytes after it", saslNoInitial(auth.MechanismSCRAM, 'n', ',', ',')},
		{"mechanism not offered", saslNoInitial("SCRAM-SHA-1")},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, fe := saslBegin(t, pgmux, "app", "app")
			_, err := nc.Write(c.msg)
			require.NoError(t, err)
			m, err := fe.Receive()
			require.NoError(t, err)
			e, ok := m.(*pgproto3.ErrorResponse)
			require.True(t, ok, "want an ErrorResponse, got %#v", m)
			require.Equal(t, "08P01", e.Code, e.Message)
		})
	}
}
