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
	nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(30*time.Second)))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "admin", "database": "pgbouncer"}})
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

// TestAdminExtendedProtocolState: the console answers messages outside the simple query
// protocol as a PostgreSQL server does. CopyData, CopyDone and CopyFail outside COPY are
// ignored (no error, no ReadyForQuery), and after an extended-protocol message's error
// everything up to Sync is discarded, a Query too, and the Sync is answered with
// ReadyForQuery; the next batch gets its own error.
func TestAdminExtendedProtocolState(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	version := &pgproto3.Query{String: "SHOW VERSION"}
	showVersion := []string{"T", "D", "C SHOW", "Z"}
	batch := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SHOW POOLS"}, &pgproto3.Bind{},
		&pgproto3.Execute{}, &pgproto3.Sync{}}
	refused := []string{"E 0A000", "Z"}

	t.Run("copy messages outside COPY are ignored", func(t *testing.T) {
		fe := rawConsole(t, h)
		require.Equal(t, showVersion, exchange(t, fe, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{},
			&pgproto3.CopyFail{Message: "gave up"}, version))
		// They leave no state behind: the next batch is refused and answered.
		require.Equal(t, refused, exchange(t, fe, batch...))
		require.Equal(t, refused, exchange(t, fe, batch...))
		require.Equal(t, showVersion, exchange(t, fe, version))
	})

	t.Run("a batch after a stray CopyDone gets its error", func(t *testing.T) {
		fe := rawConsole(t, h)
		exchange(t, fe, &pgproto3.CopyDone{}, version) // checked above; here, what it leaves behind
		require.Equal(t, refused, exchange(t, fe, batch...))
	})

	t.Run("everything up to Sync is discarded", func(t *testing.T) {
		fe := rawConsole(t, h)
		require.Equal(t, refused, exchange(t, fe, &pgproto3.Parse{Query: "SHOW POOLS"}, version, &pgproto3.Bind{},
			&pgproto3.CopyDone{}, &pgproto3.FunctionCall{Function: 1}, &pgproto3.Flush{}, &pgproto3.Execute{},
			&pgproto3.Sync{}))
		require.Equal(t, showVersion, exchange(t, fe, version))
		require.Equal(t, refused, exchange(t, fe, batch...))
	})

	t.Run("a function call is answered at once", func(t *testing.T) {
		fe := rawConsole(t, h)
		require.Equal(t, refused, exchange(t, fe, &pgproto3.FunctionCall{Function: 1}))
		require.Equal(t, showVersion, exchange(t, fe, version))
		require.Equal(t, []string{"Z"}, exchange(t, fe, &pgproto3.Sync{}), "a Sync alone is answered")
	})
}
