package proxy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// loginFailures returns pgmux_client_login_failures_total by reason.
func loginFailures(t *testing.T, h *harness) map[string]float64 {
	t.Helper()
	fams, err := h.reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	if f := family(fams, "pgmux_client_login_failures_total"); f != nil {
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestServerLoginFailureReason: a client refused because pgmux's own login to the server
// failed (a wrong server-side password) is counted as reason server_login, not
// protocol: its own login was fine.
func TestServerLoginFailureReason(t *testing.T) {
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{dbs: map[string]string{
		"wrongpw": fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=not-the-password", pg.Host, pg.Port, pgtest.AppDB, pgtest.ScramUser),
	}})
	_, err := h.tryConnect("app", "wrongpw", true)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%v", err)
	require.Equal(t, "08P01", pe.Code)
	require.Contains(t, pe.Message, "server login failed: password authentication failed")
	require.Contains(t, pe.Hint, "Check the server-side password pgmux uses: auth_file")
	require.Equal(t, map[string]float64{"server_login": 1}, loginFailures(t, h))
}

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
