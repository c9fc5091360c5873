package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

func md5Secret(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// TestAuth logs in through pgmux with every auth_type / userlist combination a PgBouncer
// user meets, then checks that pgmux's own login to PostgreSQL worked too: each role's
// pg_hba method is different (md5user md5, scramuser scram-sha-256, plainuser password,
// app trust), and for a SCRAM verifier pgmux knows no password at all — it must pass the
// client's SCRAM proof through.
func TestAuth(t *testing.T) {
	pg := pgtest.Start(t)
	admin := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var scramVerifier string
	require.NoError(t, admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", pgtest.ScramUser).Scan(&scramVerifier))
	require.Contains(t, scramVerifier, "SCRAM-SHA-256$")

	cases := []struct {
		name, authType string
		users          map[string]string
		user, password string
		db             string
		wantCode       string // "" means the login and a query succeed
	}{
		{"md5/plain", "md5", map[string]string{pgtest.AppUser: pgtest.AppPassword}, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, ""},
		{"md5/md5-hash", "md5", map[string]string{pgtest.MD5User: md5Secret(pgtest.MD5User, pgtest.MD5Password)}, pgtest.MD5User, pgtest.MD5Password, pgtest.AppDB, ""},
		{"md5/plain-to-password-hba", "md5", map[string]string{pgtest.PlainUser: pgtest.PlainPassword}, pgtest.PlainUser, pgtest.PlainPassword, pgtest.AppDB, ""},
		{"md5/scram-verifier", "md5", map[string]string{pgtest.ScramUser: scramVerifier}, pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB, ""},
		{"scram/plain", "scram-sha-256", map[string]string{pgtest.ScramUser: pgtest.ScramPassword}, pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB, ""},
		{"scram/verifier", "scram-sha-256", map[string]string{pgtest.ScramUser: scramVerifier}, pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB, ""},
		{"plain/verifier", "plain", map[string]string{pgtest.ScramUser: scramVerifier}, pgtest.ScramUser, pgtest.ScramPassword, pgtest.AppDB, ""},

		{"md5/plain/wrong-password", "md5", map[string]string{pgtest.AppUser: pgtest.AppPassword}, pgtest.AppUser, "nope", pgtest.AppDB, "28P01"},
		{"md5/md5-hash/wrong-password", "md5", map[string]string{pgtest.MD5User: md5Secret(pgtest.MD5User, pgtest.MD5Password)}, pgtest.MD5User, "nope", pgtest.AppDB, "28P01"},
		{"md5/unknown-user", "md5", map[string]string{pgtest.AppUser: pgtest.AppPassword}, "nobody", "nope", pgtest.AppDB, "28P01"},
		{"scram/plain/wrong-password", "scram-sha-256", map[string]string{pgtest.ScramUser: pgtest.ScramPassword}, pgtest.ScramUser, "nope", pgtest.AppDB, "28P01"},
		{"scram/verifier/wrong-password", "scram-sha-256", map[string]string{pgtest.ScramUser: scramVerifier}, pgtest.ScramUser, "nope", pgtest.AppDB, "28P01"},
		{"scram/unknown-user", "scram-sha-256", map[string]string{pgtest.ScramUser: scramVerifier}, "nobody", "nope", pgtest.AppDB, "28P01"},
		{"plain/wrong-password", "plain", map[string]string{pgtest.AppUser: pgtest.AppPassword}, pgtest.AppUser, "nope", pgtest.AppDB, "28P01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh pgmux each time: it remembers SCRAM keys from earlier logins.
			m := startMux(t, pg, bouncer{AuthType: tc.authType, Users: tc.users})
			cfg, err := pgx.ParseConfig(m.URL(tc.user, tc.password, tc.db))
			require.NoError(t, err)
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if tc.wantCode != "" {
				pe := muxtest.PgError(t, err)
				require.Equal(t, tc.wantCode, pe.Code, pe.Error())
				require.Equal(t, "FATAL", pe.Severity)
				require.Equal(t, fmt.Sprintf("password authentication failed for user %q", tc.user), pe.Message)
				return
			}
			require.NoError(t, err)
			defer conn.Close(ctx)
			var user, db string
			require.NoError(t, conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db))
			require.Equal(t, tc.user, user)
			require.Equal(t, tc.db, db)
		})
	}
}

// TestAuthUnknownDatabase: without a "*" entry, a database pgmux does not know is refused
// with PostgreSQL's SQLSTATE; with one, PostgreSQL's own answer comes through.
func TestAuthUnknownDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cases := []struct {
		name string
		dbs  []string
	}{
		{"not-in-ini", []string{fmt.Sprintf("%s = host=%s port=%d", pgtest.AppDB, pg.Host, pg.Port)}},
		{"not-on-server", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, pg, bouncer{Databases: tc.dbs})
			_, err := pgx.Connect(ctx, m.URL(pgtest.AppUser, pgtest.AppPassword, "no_such_db"))
			pe := muxtest.PgError(t, err)
			require.Equal(t, "3D000", pe.Code, pe.Error())
			require.Equal(t, `database "no_such_db" does not exist`, pe.Message)
			// The known database still works.
			conn := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
			_, err = conn.Exec(ctx, "SELECT 1")
			require.NoError(t, err)
		})
	}
}

// TestMaxClientConn holds max_client_conn connections open: one more is refused with
// 53300 while the others keep working.
func TestMaxClientConn(t *testing.T) {
	pg := pgtest.Start(t)
	const limit = 5
	m := startMux(t, pg, bouncer{MaxClientConn: limit, PoolSize: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held := make([]*pgx.Conn, limit)
	for i := range held {
		held[i] = m.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	}
	for range 3 {
		_, err := pgx.Connect(ctx, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		pe := muxtest.PgError(t, err)
		require.Equal(t, "53300", pe.Code, pe.Error())
	}
	for i, c := range held {
		var n int
		require.NoError(t, c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n))
		require.Equal(t, i, n)
	}
	// A slot freed is a slot usable.
	require.NoError(t, held[0].Close(ctx))
	require.Eventually(t, func() bool {
		c, err := pgx.Connect(ctx, m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		if err != nil {
			return false
		}
		_ = c.Close(ctx)
		return true
	}, 5*time.Second, 50*time.Millisecond)
}
