package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestAdminSetIgnoredChangeable: SET of a setting PgBouncer lets change at run time and
// pgmux reads and ignores (syslog, syslog_ident, log_stats, dns_max_ttl...) is taken as
// PgBouncer 1.18 takes it: tag "SET key=value", and SHOW CONFIG then shows the value,
// printed back as PgBouncer prints it (an integer in decimal); here with a NOTICE that it
// has no effect in pgmux. A value PgBouncer's parser refuses is refused (08P01, its "SET
// failed"). pgmux refused every one with 08P01 "setting is not supported by pgmux".
func TestAdminSetIgnoredChangeable(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	conn, notices := noticedConsole(t, h, "admin")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ q, tag, key, value string }{
		{"SET syslog = 1", "SET syslog=1", "syslog", "1"},
		{"SET syslog_ident = 'pgmux-test'", "SET syslog_ident=pgmux-test", "syslog_ident", "pgmux-test"},
		{"set syslog_facility to local0", "SET syslog_facility=local0", "syslog_facility", "local0"},
		{"SET log_stats = 0", "SET log_stats=0", "log_stats", "0"},
		{"SET tcp_user_timeout = ' 12'", "SET tcp_user_timeout= 12", "tcp_user_timeout", "12"},
		{"SET dns_max_ttl = '2.5'", "SET dns_max_ttl=2.5", "dns_max_ttl", "2.5"},
	} {
		*notices = nil
		tag, err := conn.Exec(ctx, c.q)
		require.NoError(t, err, c.q)
		require.Equal(t, c.tag, tag.String())
		require.Len(t, *notices, 1, c.q)
		require.Contains(t, (*notices)[0].Message, "has no effect in pgmux", c.q)
		_, rows := show(t, conn, "SHOW CONFIG")
		require.Equal(t, c.value, rowWhere(rows, "key", c.key)["value"], c.q)
	}
	for _, q := range []string{"SET syslog = many", "SET dns_max_ttl = 'soon'", "SET log_stats = '1.5'"} {
		_, err := conn.Exec(ctx, q)
		require.Equal(t, "08P01", sqlState(err), "%s: %v", q, err)
	}
	_, rows := show(t, conn, "SHOW CONFIG")
	require.Equal(t, "1", rowWhere(rows, "key", "syslog")["value"], "a refused SET changes nothing")
	require.Equal(t, "0", rowWhere(rows, "key", "log_stats")["value"])
}

// TestAdminStatsPeriod: stats_period, which PgBouncer lets SET, is the window of SHOW
// STATS' averages: once one passes without queries, the averages fall to 0, as
// PgBouncer's do after its next refresh. pgmux read and ignored stats_period and
// averaged over a fixed minute (from start, until the first minute had passed), so the
// averages of queries run seconds ago stayed up for the whole minute.
func TestAdminStatsPeriod(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	tag, err := adm.Exec(context.Background(), "SET stats_period = 1")
	require.NoError(t, err)
	require.Equal(t, "SET stats_period=1", tag.String())
	_, rows := show(t, adm, "SHOW CONFIG")
	require.Equal(t, "1", rowWhere(rows, "key", "stats_period")["value"])
	// 0, which PgBouncer takes (and a config of its may carry), is taken, as 1 s.
	_, err = adm.Exec(context.Background(), "SET stats_period = 0")
	require.NoError(t, err)
	_, err = adm.Exec(context.Background(), "SET stats_period = -1")
	require.Equal(t, "08P01", sqlState(err), "%v", err)

	app := h.connect(t, "app", "app", false)
	for i := 0; i < 100; i++ {
		execSQL(t, app, "SELECT 1")
	}
	_, rows = show(t, adm, "SHOW STATS")
	require.Positive(t, num(t, rowWhere(rows, "database", "app"), "avg_query_count"), "%v", rows)
	require.Eventually(t, func() bool {
		_, rows = show(t, adm, "SHOW STATS")
		return num(t, rowWhere(rows, "database", "app"), "avg_query_count") == 0
	}, 15*time.Second, 100*time.Millisecond, "the averages stay up with no query for over a stats_period")
}

// TestAdminSetNameCase: the console's SET matches a setting's name as written, as
// PgBouncer's does (1.18 and 1.25 look the name up with strcmp): "SET Default_Pool_Size =
// 5" is refused with 08P01, its "SET failed", and changes nothing, whether the name is a
// word or a quoted identifier, and whatever the setting (a restart-only one, one pgmux
// ignores). pgmux lower-cased the name and took the value.
func TestAdminSetNameCase(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	for _, q := range []string{"SET Default_Pool_Size = 5", `SET "Default_Pool_Size" = 6`, "set DEFAULT_POOL_SIZE to 8",
		"SET Listen_Port = 1", "SET Syslog = 1"} {
		_, err := adm.Exec(context.Background(), q)
		require.Equal(t, "08P01", sqlState(err), "%s: %v", q, err)
	}
	_, rows := show(t, adm, "SHOW CONFIG")
	require.Equal(t, "20", rowWhere(rows, "key", "default_pool_size")["value"])
	require.Equal(t, "0", rowWhere(rows, "key", "syslog")["value"])
	require.Equal(t, 20, h.srv.Config().DefaultPoolSize)

	tag, err := adm.Exec(context.Background(), `SET "default_pool_size" = 5`)
	require.NoError(t, err)
	require.Equal(t, "SET default_pool_size=5", tag.String())
	require.Equal(t, 5, h.srv.Config().DefaultPoolSize)
}

// TestAdminSetLengths: PgBouncer's console copies SET's key and value into buffers of 64
// and 256 bytes: a key of 64 bytes or more, a value of 256 or more as written (quotes
// and doubled quotes included) or an empty key is "bad arguments" (08P01), for a
// stats_users member too, and changes nothing; a value that fits is taken whole, and
// the tag "SET key=value" is never cut (its buffer of 512 holds any that fit), as
// PgBouncer 1.18 answers (its tag for a value of 255 bytes is 278 bytes; psql shows
// only 63 of them, libpq's limit). pgmux took any length.
func TestAdminSetLengths(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resetQuery := func() string {
		_, rows := show(t, adm, "SHOW CONFIG")
		return rowWhere(rows, "key", "server_reset_query")["value"].(string)
	}
	for _, c := range []struct{ value, stored string }{
		{strings.Repeat("x", 255), strings.Repeat("x", 255)},
		{"'" + strings.Repeat("y", 253) + "'", strings.Repeat("y", 253)},
		{"'" + strings.Repeat("a''", 84) + "'", strings.Repeat("a'", 84)}, // 254 bytes as written
	} {
		tag, err := adm.Exec(ctx, "SET server_reset_query = "+c.value)
		require.NoError(t, err, c.value)
		require.Equal(t, "SET server_reset_query="+c.stored, tag.String())
		require.Equal(t, c.stored, resetQuery())
	}
	kept := resetQuery()
	stats := h.connect(t, "stats", "pgbouncer", true)
	for _, q := range []string{
		"SET server_reset_query = " + strings.Repeat("x", 256),
		"SET server_reset_query = '" + strings.Repeat("y", 254) + "'",
		"SET server_reset_query = '" + strings.Repeat("a''", 85) + "'",
		"SET " + strings.Repeat("k", 64) + " = 1",
		`SET "" = 1`,
		"SET client_encoding = " + strings.Repeat("x", 256),
	} {
		for _, conn := range []*pgx.Conn{adm, stats} {
			_, err := conn.Exec(ctx, q)
			require.Equal(t, "08P01", sqlState(err), "%.40s: %v", q, err)
			require.Contains(t, err.Error(), "bad arguments", "%.40s", q)
		}
	}
	require.Equal(t, kept, resetQuery())
	_, err := adm.Exec(ctx, "SET "+strings.Repeat("k", 63)+" = 1")
	require.ErrorContains(t, err, "unknown setting", "a name of 63 bytes fits")
}
