package sticky

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestRefusedStartupAsPostgres: a startup value PostgreSQL refuses (a bad value, a name
// it does not know, a setting that cannot be changed or not by this role), as a
// parameter of its own or in options, refuses the login through pgmux as it does on a
// direct connection: FATAL with PostgreSQL's SQLSTATE, message, detail and hint. The
// values it takes log in on both. Meanwhile another client of the pool's one server
// keeps its own settings, and the server is left as it was: a client logging in after
// sees the server's defaults.
func TestRefusedStartupAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "refusedstart")
	other := m.connect(t, db)
	_, err := other.Exec(ctxT(t), "SET statement_timeout = '42s'")
	require.NoError(t, err)
	cases := []map[string]string{
		{"TimeZone": "bogus"},
		{"timezone": "bogus"},
		{"DateStyle": "nonsense"},
		{"IntervalStyle": "x"},
		{"client_encoding": "bogus"},
		{"standard_conforming_strings": "maybe"},
		{"options": "-c statement_timeout=abc"},
		{"statement_timeout": "abc"},
		{"extra_float_digits": "99"},
		{"foo": "bar"},
		{"options": "-c no_such_setting=1"},
		{"shared_buffers": "1MB"},
		{"is_superuser": "on"},
		{"log_statement": "all"},
		{"role": "postgres"},
		{"extra_float_digits": "2"},
		{"options": "-c statement_timeout=5s -c work_mem=8MB"},
		{"DateStyle": "sql, dmy"},
		{"TimeZone": "europe/paris"},
		{"foo.bar": "x"},
		{"ignore_system_indexes": "on"}, // only a login sets it: not asked
	}
	for _, params := range cases {
		t.Run(fmt.Sprint(params), func(t *testing.T) {
			want := loginOutcome(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params))
			got := loginOutcome(t, withParams(t, m.url(db), params))
			require.Equal(t, want, got)
			var v string
			require.NoError(t, other.QueryRow(ctxT(t), "SHOW statement_timeout").Scan(&v))
			require.Equal(t, "42s", v, "the other client's setting")
		})
	}
	later := m.connect(t, db)
	for _, name := range []string{"TimeZone", "DateStyle", "statement_timeout", "extra_float_digits"} {
		assert.Equal(t, show(t, m.direct(t, db), name), show(t, later, name), name)
	}
}

// loginOutcome logs in at url and returns the login's error, by the fields a client
// acts on, or for a login that succeeds what a first query sees.
func loginOutcome(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "%v", err)
		return fmt.Sprintf("E %s %s: %s (%s; %s)", pe.Severity, pe.Code, pe.Message, pe.Detail, pe.Hint)
	}
	defer func() { _ = c.Close(ctx) }()
	var v string
	require.NoError(t, c.QueryRow(ctx, "SELECT current_setting('statement_timeout')", pgx.QueryExecModeSimpleProtocol).Scan(&v))
	return "ok, statement_timeout " + v
}

// TestLoginNoticeAsPostgres: an application_name longer than a name (63 bytes) is cut
// by PostgreSQL at login, which says so in a NOTICE (42622) the client gets with the
// login's answer; through pgmux the client gets the same, on the login that asked a
// server about the value and on the ones after it, which did not.
func TestLoginNoticeAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "loginnotice")
	cases := []struct {
		name   string
		params map[string]string
	}{
		{"80 bytes", map[string]string{"application_name": strings.Repeat("a", 80)}},
		{"64 bytes", map[string]string{"application_name": strings.Repeat("b", 64)}},
		{"63 bytes", map[string]string{"application_name": strings.Repeat("c", 63)}},
		{"cut in a character", map[string]string{"application_name": strings.Repeat("é", 40)}},
		{"options", map[string]string{"options": "-c application_name=" + strings.Repeat("d", 70)}},
	}
	for _, c := range cases {
		params := c.params
		t.Run(c.name, func(t *testing.T) {
			want := loginNotices(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params))
			for i := 0; i < 2; i++ {
				require.Equal(t, want, loginNotices(t, withParams(t, m.url(db), params)), "login %d", i+1)
			}
		})
	}
}

// loginNotices logs in at url and returns the notices of the login and of a first
// query, and the application_name reported at login.
func loginNotices(t *testing.T, url string) []string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	var seen []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		seen = append(seen, fmt.Sprintf("N %s %s: %s (%s; %s)", n.Severity, n.Code, n.Message, n.Detail, n.Hint))
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer func() { _ = c.Close(ctx) }()
	seen = append(seen, "login: application_name "+c.PgConn().ParameterStatus("application_name"))
	_, err = c.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	return seen
}
