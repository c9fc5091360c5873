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
	"github.com/pgmux/pgmux/proxy"
)

// TestAuthQueryStateBounded: logins that fail before authenticating leave nothing behind,
// however many names they try. With auth_query, pgmux kept every user name it looked up
// (found or not) until a reload, and made auth_user's pool (with its goroutine and
// limits) for every database name the "*" entry resolved, before the client had
// authenticated: the failed logins below left 42 names cached and 41 pools more. Only
// roles auth_query finds are kept now, and before a client has authenticated auth_query
// runs in such a database on a connection of its own. A client that does log in with a
// secret auth_query gave still does, in a database only "*" names too.
func TestAuthQueryStateBounded(t *testing.T) {
	pg := pgtest.Start(t)
	wild := pg.NewDatabase(t, "aqwild")
	h := startProxy(t, harnessOpts{
		extra: map[string]string{"auth_type": "md5", "auth_user": pgtest.SuperUser},
		dbs:   map[string]string{"*": fmt.Sprintf("host=%s port=%d", pg.Host, pg.Port)},
	})
	creds := map[string]config.Credential{pgtest.SuperUser: {User: pgtest.SuperUser, Password: "unused"}}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	login := func(user, pw, db string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pw, h.port, db))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var n int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	}

	// The named database's auth_user pool is made once, by the first lookup.
	require.Equal(t, "28P01", sqlState(login("ghost", "x", "app")))
	pools0, limits0 := proxy.PoolCount(h.srv)
	for i := range 40 {
		// No such role.
		require.Equal(t, "28P01", sqlState(login(fmt.Sprintf("ghost%d", i), "x", "app")))
		// No such database on the server, which only the "*" entry names: auth_query
		// cannot run there.
		require.Equal(t, "28000", sqlState(login(fmt.Sprintf("phantom%d", i), "x", fmt.Sprintf("nodb%d", i))))
		// A role that exists, with a wrong password, in a database only "*" names.
		require.Equal(t, "28P01", sqlState(login(pgtest.AppUser, "x", wild)))
	}
	pools, limits := proxy.PoolCount(h.srv)
	require.Equal(t, pools0, pools, "pools made by failed logins")
	require.Equal(t, limits0, limits, "database limits made by failed logins")
	require.Equal(t, 1, proxy.AuthCacheLen(h.srv), "user names kept by failed logins: only the role that exists")

	// A login with auth_query's secret, in a database only "*" names: its pool and
	// auth_user's there are made once it has authenticated, and its role is kept.
	for range 2 {
		require.NoError(t, login(pgtest.AppUser, pgtest.AppPassword, wild))
	}
	pools, _ = proxy.PoolCount(h.srv)
	require.Equal(t, pools0+2, pools, "pools of the logged-in client and of auth_user in its database")
	require.Equal(t, 1, proxy.AuthCacheLen(h.srv))
}
