package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/proxy"
)

// TestFailedReloadCounted: a reload whose ini file does not load (an unknown setting, the
// commonest mistake) counts in pgmux_reloads_total{result="failure"}, as one that
// srv.Reload refuses does; a good one counts as a success.
func TestFailedReloadCounted(t *testing.T) {
	ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
	good := "[databases]\napp = host=127.0.0.1\n[pgbouncer]\nlisten_port = 6500\n"
	require.NoError(t, os.WriteFile(ini, []byte(good), 0o600))
	f, err := parseFlags([]string{ini}, io.Discard, io.Discard)
	require.NoError(t, err)
	cfg, creds, err := loadConfig(f, noEnv)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	srv, err := proxy.New(proxy.Options{Config: cfg, Credentials: creds, Logger: zap.NewNop(), Registry: reg})
	require.NoError(t, err)
	defer srv.Close()
	pc := newProcsControl(1, srv, zap.NewNop(), prometheus.NewRegistry())
	count := func(result string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != "pgmux_reloads_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == result {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}

	require.NoError(t, os.WriteFile(ini, []byte(good+"no_such_setting = 1\n"), 0o600))
	require.ErrorContains(t, reload(srv, pc, f, noEnv, zap.NewNop()), "unknown setting")
	require.Equal(t, 1.0, count("failure"))
	require.Equal(t, 0.0, count("success"))

	require.NoError(t, os.WriteFile(ini, []byte(good), 0o600))
	require.NoError(t, reload(srv, pc, f, noEnv, zap.NewNop()))
	require.Equal(t, 1.0, count("failure"))
	require.Equal(t, 1.0, count("success"))
}
