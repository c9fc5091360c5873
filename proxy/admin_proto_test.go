package proxy_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// rawConsole logs in to the console as admin with raw protocol messages.
func rawConsole(t *testing.T, h *harness) *pgproto3.Frontend {
	t.Helper()
	return rawLogin(t, h, map[string]string{"user": "admin", "database": "pgbouncer"})
}

// rawLogin logs in through pgmux with raw protocol messages and the startup parameters
// params, and returns once the login's ReadyForQuery is read.
func rawLogin(t *testing.T, h *harness, params map[string]string) *pgproto3.Frontend {
	t.Helper()
	nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(30*time.Second)))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	require.NoError(t, fe.Flush())
	for {
		m, err := fe.Receive()
		require.NoError(t, err)
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return fe
		}
		_, isErr := m.(*pgproto3.ErrorResponse)
		require.False(t, isErr, "login failed: %#v", m)
	}
}

// exchange sends msgs and returns the answer up to the first ReadyForQuery, one string
// per message: its type, with the SQLSTATE of an ErrorResponse.
func exchange(t *testing.T, fe *pgproto3.Frontend, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	require.NoError(t, fe.Flush())
	var out []string
	for {
		m, err := fe.Receive()
		require.NoError(t, err, "after %v", out)
		switch x := m.(type) {
		case *pgproto3.ErrorResponse:
			out = append(out, "E "+x.Code)
		case *pgproto3.RowDescription:
			out = append(out, "T")
		case *pgproto3.DataRow:
			out = append(out, "D")
		case *pgproto3.CommandComplete:
			out = append(out, "C "+string(x.CommandTag))
		case *pgproto3.ReadyForQuery:
			return append(out, "Z")
		default:
			out = append(out, "?")
		}
	}
}

// fatalThenClosed reads the answer to msgs: a FATAL (its SQLSTATE is returned) and then
// the end of the connection, with nothing else before it.
func fatalThenClosed(t *testing.T, fe *pgproto3.Frontend, msgs ...pgproto3.FrontendMessage) string {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	require.NoError(t, fe.Flush())
	m, err := fe.Receive()
	require.NoError(t, err)
	e, ok := m.(*pgproto3.ErrorResponse)
	require.True(t, ok, "answer: %#v", m)
	require.Equal(t, "FATAL", e.Severity, "%s: %s", e.Code, e.Message)
	require.Contains(t, e.Message, "admin console does not support")
	m, err = fe.Receive()
	require.Error(t, err, "the connection stays open after the FATAL (next: %#v)", m)
	return e.Code
}

// TestAdminExtendedProtocolRefused: as PgBouncer's admin console does, a message of the
// extended query protocol (or a function call) ends the console connection with an
// 08P01 error; pgmux answered 0A000 and kept the connection. CopyData, CopyDone and
// CopyFail outside COPY are ignored (no error, no ReadyForQuery).
func TestAdminExtendedProtocolRefused(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	version := &pgproto3.Query{String: "SHOW VERSION"}
	showVersion := []string{"T", "D", "C SHOW", "Z"}

	for _, tc := range []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"a batch", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SHOW POOLS"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"a Parse alone", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SHOW POOLS"}, &pgproto3.Flush{}}},
		{"a Describe", []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}}},
		{"a Sync alone", []pgproto3.FrontendMessage{&pgproto3.Sync{}}},
		{"a function call", []pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := rawConsole(t, h)
			require.Equal(t, showVersion, exchange(t, fe, version))
			require.Equal(t, "08P01", fatalThenClosed(t, fe, tc.msgs...))
		})
	}

	t.Run("copy messages outside COPY are ignored", func(t *testing.T) {
		fe := rawConsole(t, h)
		require.Equal(t, showVersion, exchange(t, fe, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{},
			&pgproto3.CopyFail{Message: "gave up"}, version))
		require.Equal(t, showVersion, exchange(t, fe, version))
	})
}
