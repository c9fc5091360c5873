package sticky

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// pgbouncerColumns reads PgBouncer 1.25's SHOW CLIENTS columns from proxy's testdata.
func pgbouncerColumns(t *testing.T, cmd string) []string {
	t.Helper()
	f, err := os.Open("../../proxy/testdata/pgbouncer-1.25-show-columns.tsv")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, cols, ok := strings.Cut(sc.Text(), "\t"); ok && name == cmd {
			return strings.Split(cols, ",")
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no %s in the reference columns", cmd)
	return nil
}

// pinnedGauges reads pgmux_pinned_clients for db's app pool, by reason.
func (m *mux) pinnedGauges(t *testing.T, db string) map[string]float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	require.NoError(t, err)
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
	out := make(map[string]float64)
	for _, f := range fams {
		if f.GetName() != "pgmux_pinned_clients" {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["database"] == db && labels["user"] == pgtest.AppUser {
				out[labels["reason"]] = mt.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestPinVisibility: SHOW CLIENTS keeps PgBouncer's columns and adds pin_reason last;
// pgmux_pinned_clients counts pinned clients per pool and reason.
func TestPinVisibility(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "visible")
	adm := m.admin(t)
	ctx := ctxT(t)

	lock, temp, both, plain := m.connect(t, db), m.connect(t, db), m.connect(t, db), m.connect(t, db)
	_, err := lock.Exec(ctx, "SELECT pg_advisory_lock(11)")
	require.NoError(t, err)
	_, err = temp.Exec(ctx, "CREATE TEMP TABLE t (x int)")
	require.NoError(t, err)
	_, err = both.Exec(ctx, "SELECT pg_advisory_lock(12)")
	require.NoError(t, err)
	// A SET follows the client without pinning; set_config of a computed name pins.
	_, err = both.Exec(ctx, "SELECT set_config('work' || '_mem', '8MB', false)")
	require.NoError(t, err)
	_, err = plain.Exec(ctx, "SELECT 1")
	require.NoError(t, err)

	names, _ := showClients(t, adm)
	want := pgbouncerColumns(t, "CLIENTS")
	require.Equal(t, append(want, "pin_reason"), names)

	require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, lock))
	require.Equal(t, "temp_object", pinReasonOf(t, adm, db, temp))
	require.Equal(t, "advisory_lock,set", pinReasonOf(t, adm, db, both))
	require.Equal(t, "", pinReasonOf(t, adm, db, plain))

	g := m.pinnedGauges(t, db)
	require.Equal(t, map[string]float64{"advisory_lock": 2, "listen": 0, "prepare": 0, "with_hold_cursor": 0,
		"temp_object": 1, "set": 1, "role": 0, "load": 0, "session": 0}, g)

	_, err = both.Exec(ctx, "SELECT pg_advisory_unlock_all()")
	require.NoError(t, err)
	_, err = both.Exec(ctx, "RESET work_mem")
	require.NoError(t, err)
	waitPinReason(t, adm, db, both, "")
	g = m.pinnedGauges(t, db)
	require.Equal(t, 1.0, g["advisory_lock"])
	require.Equal(t, 0.0, g["set"])
}
