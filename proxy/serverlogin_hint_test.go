package proxy

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
)

// TestServerLoginHint: the hint of a failed server login follows its cause, and names
// the upstream URL in zero-config mode.
func TestServerLoginHint(t *testing.T) {
	ini := config.Default()
	ini.Path = "/etc/pgbouncer/pgbouncer.ini"
	url, err := config.FromURL("postgres://app:s3cret@db.internal:5432/app")
	require.NoError(t, err)
	login := func(e error) error { return fmt.Errorf("%w: %w", pool.ErrServerLogin, e) }
	pw := login(pgerr.Fatal(pgerr.InvalidPassword, `password authentication failed for user "app"`))
	hba := login(pgerr.Fatal(pgerr.InvalidAuthorization, `no pg_hba.conf entry for host "10.0.0.1"`))
	hint := func(cfg *config.Config, err error) string { return serverLoginFailedIn(cfg, err).Hint }

	require.Contains(t, hint(ini, pw), "Check the server-side password pgmux uses: auth_file")
	require.Contains(t, hint(url, pw), "the password in the upstream URL (PGMUX_UPSTREAM")
	require.NotContains(t, hint(url, pw), "auth_file")
	require.NotContains(t, hint(url, pw), "s3cret")
	require.Contains(t, hint(ini, hba), "pg_hba.conf")

	// pool's TLS and authentication-method failures, as pool/dial.go returns them.
	tlsErr := fmt.Errorf("%w: %w", pool.ErrServerLogin, fmt.Errorf("%w: server does not support TLS", pool.ErrServerTLS))
	require.Contains(t, hint(ini, tlsErr), "server_tls_sslmode")
	require.Contains(t, hint(url, tlsErr), "sslmode (and sslrootcert) in the upstream URL")
	require.NotContains(t, hint(ini, tlsErr), "password")
	method := fmt.Errorf("%w: %w", pool.ErrServerLogin, pool.ErrServerAuthMethod)
	require.Contains(t, hint(ini, method), "authentication method")
	other := fmt.Errorf("%w: unexpected message 'X' during login", pool.ErrServerLogin)
	require.Equal(t, "See PostgreSQL's log for why it refused pgmux's login.", hint(ini, other))
	require.Contains(t, serverLoginFailed(pw).Hint, "auth_file", "without a configuration both sources are named")
	require.Contains(t, serverLoginFailed(pw).Hint, "PGMUX_UPSTREAM")
	require.Nil(t, serverLoginFailedIn(ini, login(pgerr.Fatal(pgerr.InvalidCatalogName, "no such db"))))
}
