package proxy_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestServerLoginTLSHint: when the server login fails because the server has no TLS,
// the hint points at the TLS settings, not at the password.
func TestServerLoginTLSHint(t *testing.T) {
	// pgtest's PostgreSQL runs with ssl = off.
	h := startProxy(t, harnessOpts{extra: map[string]string{"server_tls_sslmode": "require"}})
	_, err := h.tryConnect("app", "app", true)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "08P01", pe.Code)
	require.Contains(t, pe.Message, "server does not support TLS")
	require.Contains(t, pe.Hint, "server_tls_sslmode")
	require.NotContains(t, pe.Hint, "password")
}
