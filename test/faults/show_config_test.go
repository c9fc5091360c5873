package faults

import (
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// pgbouncerSettings reads PgBouncer 1.25's SHOW CONFIG reference: its keys in its order,
// each with its default and changeable.
func pgbouncerSettings(t *testing.T) (keys []string, ref map[string][2]string) {
	t.Helper()
	data, err := os.ReadFile("../../config/testdata/pgbouncer-1.25-settings.tsv")
	require.NoError(t, err)
	ref = map[string][2]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i == 0 {
			continue // the header
		}
		f := strings.Split(line, "\t")
		require.Len(t, f, 3, line)
		keys = append(keys, f[0])
		ref[f[0]] = [2]string{f[1], f[2]}
	}
	return keys, ref
}

// TestShowConfigListsEveryPgBouncerSetting: SHOW CONFIG answers PgBouncer 1.25's columns
// (key, value, default, changeable: pgbouncer_exporter refuses any other count) and a row
// for each of PgBouncer's settings, in PgBouncer's order, pgmux's own after them. The
// settings pgmux accepts and ignores are listed too, with the file's value (or
// PgBouncer's default) and PgBouncer's changeable, and a NOTICE names those the file sets,
// as the warnings at start do. pgmux listed only the settings it implements: stats_period,
// syslog, job_name and 33 more had no row.
func TestShowConfigListsEveryPgBouncerSetting(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Extra: []string{"log_stats = 0", "syslog = 1", "default_pool_size = 7"}})
	cc, err := pgx.ParseConfig(m.URL("admin", "adminpass", "pgbouncer"))
	require.NoError(t, err)
	cc.DefaultQueryExecMode = pgxSimple
	var notices []string
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	ctx, cancel := ctxT()
	defer cancel()
	adm, err := pgx.ConnectConfig(ctx, cc)
	require.NoError(t, err)
	defer adm.Close(ctx)

	rows, err := adm.Query(ctx, "SHOW CONFIG")
	require.NoError(t, err)
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	require.Equal(t, []string{"key", "value", "default", "changeable"}, cols)
	type row struct{ key, value, def, changeable string }
	var got []row
	for rows.Next() {
		var r row
		var value, def *string
		require.NoError(t, rows.Scan(&r.key, &value, &def, &r.changeable))
		if value != nil {
			r.value = *value
		}
		if def != nil {
			r.def = *def
		}
		got = append(got, r)
	}
	require.NoError(t, rows.Err())

	keys, ref := pgbouncerSettings(t)
	require.GreaterOrEqual(t, len(got), len(keys))
	byKey := map[string]row{}
	for i, r := range got {
		if i < len(keys) {
			require.Equal(t, keys[i], r.key, "row %d: PgBouncer's settings in PgBouncer's order", i)
		} else {
			_, theirs := ref[r.key]
			require.False(t, theirs, "pgmux's own settings come after PgBouncer's: %s", r.key)
		}
		byKey[r.key] = r
	}
	for _, k := range keys {
		want := ref[k][0]
		if k == "verbose" {
			want = "0" // PgBouncer prints no default; its value is 0
		}
		require.Equal(t, want, byKey[k].def, "default of %s", k)
	}
	require.Equal(t, row{"log_stats", "0", "1", "yes"}, byKey["log_stats"], "an ignored setting the file sets")
	require.Equal(t, row{"syslog", "1", "0", "yes"}, byKey["syslog"])
	require.Equal(t, row{"job_name", "pgbouncer", "pgbouncer", "no"}, byKey["job_name"], "an ignored setting the file leaves out")
	require.Equal(t, m.Ini, byKey["conffile"].value, "conffile is the file pgmux was started with")
	require.Equal(t, row{"default_pool_size", "7", "20", "yes"}, byKey["default_pool_size"])
	require.Equal(t, "no", byKey["listen_port"].changeable)
	require.Len(t, notices, 1, "one NOTICE names the ignored settings the file sets")
	require.Contains(t, notices[0], "log_stats, syslog")
	require.Contains(t, notices[0], "no effect")
}
