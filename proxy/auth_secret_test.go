package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/auth"
)

// A SCRAM secret in auth_file is parsed once and kept (auth.go scramSecret, keyed by the
// secret itself, so that no user can be checked against another's or an older secret); a
// RELOAD with a new secret for the same user must take effect at the next login, for
// SCRAM and for md5 (which answers SCRAM for a SCRAM secret), and a client's proof made
// with the old password must then fail.
func TestReloadedSCRAMSecretTakesEffect(t *testing.T) {
	h := startProxy(t, harnessOpts{extra: map[string]string{"auth_type": "scram-sha-256"}})
	secret := func(pw string) map[string]config.Credential {
		v := auth.NewVerifier(pw, auth.NewSalt(), 4096)
		return map[string]config.Credential{pgtest.AppUser: {User: pgtest.AppUser, Password: v.String()}}
	}
	login := func(pw string) error {
		url := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/app?sslmode=disable", pgtest.AppUser, pw, h.port)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var n int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	for _, authType := range []string{"scram-sha-256", "md5"} {
		t.Run(authType, func(t *testing.T) {
			next := h.srv.Config().Clone()
			require.NoError(t, config.Set(next, "auth_type", authType))
			require.NoError(t, h.srv.Reload(next, secret("first-secret")))
			for range 2 { // the second login uses the parsed secret
				require.NoError(t, login("first-secret"))
			}
			require.ErrorContains(t, login("second-secret"), "28P01")

			require.NoError(t, h.srv.Reload(next.Clone(), secret("second-secret")))
			require.ErrorContains(t, login("first-secret"), "28P01", "the old secret still let a client in")
			require.NoError(t, login("second-secret"))
		})
	}
}
