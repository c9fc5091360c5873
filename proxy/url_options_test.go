package proxy_test

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// TestUpstreamURLOptions: the settings of an upstream URL's options
// ("-c search_path=... -c TimeZone=...") are on every server pgmux opens for it, as on a
// libpq connection made with that URL: a client shown through pgmux what it is shown
// directly, at login (ParameterStatus TimeZone) and by SHOW, and RESET, RESET ALL and
// DISCARD ALL go back to those values, as do the settings a client that follows on the
// same server finds. Before, options was ignored with a warning.
func TestUpstreamURLOptions(t *testing.T) {
	pg := pgtest.Start(t)
	u, err := url.Parse(pg.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	// Spaces as %20: libpq (and pgx) take a '+' in a URL as itself.
	opts := strings.ReplaceAll(url.QueryEscape(`-c search_path=app_opts,public -c TimeZone=Pacific/Chatham -c statement_timeout=7s`), "+", "%20")
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "options=" + opts

	cfg, err := config.FromURL(u.String())
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings)
	for k, v := range map[string]string{"listen_addr": "127.0.0.1", "unix_socket_dir": "", "auth_type": "trust",
		"default_pool_size": "1"} { // one server: the second client gets the first one's
		require.NoError(t, config.Set(cfg, k, v))
	}
	cfg.ListenPort = 0
	srv, err := proxy.New(proxy.Options{Config: cfg, Version: "test"})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Close() })
	port := srv.Addrs()[0].(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(raw string) *pgx.Conn {
		cc, err := pgx.ParseConfig(raw)
		require.NoError(t, err)
		conn, err := pgx.ConnectConfig(ctx, cc)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
	direct := open(u.String()) // the URL as libpq would use it
	muxURL := "postgres://" + pgtest.AppUser + "@127.0.0.1:" + strconv.Itoa(port) + "/" + pgtest.AppDB + "?sslmode=disable"
	mux := open(muxURL)

	require.Equal(t, "Pacific/Chatham", direct.PgConn().ParameterStatus("TimeZone"))
	require.Equal(t, direct.PgConn().ParameterStatus("TimeZone"), mux.PgConn().ParameterStatus("TimeZone"),
		"the login's ParameterStatus")

	// Simple protocol: DISCARD ALL drops the statements pgx would have prepared.
	show := func(conn *pgx.Conn) [3]string {
		var out [3]string
		for i, name := range []string{"search_path", "TimeZone", "statement_timeout"} {
			require.NoError(t, conn.QueryRow(ctx, "SHOW "+name, pgx.QueryExecModeSimpleProtocol).Scan(&out[i]), name)
		}
		return out
	}
	want := show(direct)
	require.Equal(t, [3]string{"app_opts,public", "Pacific/Chatham", "7s"}, want)
	require.Equal(t, want, show(mux), "at login")

	changed := "SET search_path = elsewhere; SET TimeZone = 'UTC'; SET statement_timeout = '1min'"
	for _, reset := range []string{"RESET search_path; RESET TimeZone; RESET statement_timeout", "RESET ALL", "DISCARD ALL"} {
		for _, conn := range []*pgx.Conn{direct, mux} {
			_, err := conn.Exec(ctx, changed, pgx.QueryExecModeSimpleProtocol)
			require.NoError(t, err)
			require.Equal(t, [3]string{"elsewhere", "UTC", "1min"}, show(conn))
			_, err = conn.Exec(ctx, reset, pgx.QueryExecModeSimpleProtocol)
			require.NoError(t, err, reset)
		}
		require.Equal(t, want, show(direct), "after %s", reset)
		require.Equal(t, want, show(mux), "after %s", reset)
		require.Equal(t, direct.PgConn().ParameterStatus("TimeZone"), mux.PgConn().ParameterStatus("TimeZone"),
			"ParameterStatus after %s", reset)
	}

	// A client leaving its own settings on the one server: the next client on it finds
	// the URL's.
	_, err = mux.Exec(ctx, changed, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	require.NoError(t, mux.Close(ctx))
	require.Equal(t, want, show(open(muxURL)), "a client after one that changed them")
}
