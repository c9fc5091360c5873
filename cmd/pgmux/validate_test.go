package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFinalConfigValidated: settings from the environment and flags go through
// config.Validate like the ini file's, with an error naming what is missing, in
// zero-config mode and with an ini file.
func TestFinalConfigValidated(t *testing.T) {
	load := func(args []string, vars map[string]string) error {
		f, err := parseFlags(args, io.Discard, io.Discard)
		require.NoError(t, err)
		_, _, err = loadConfig(f, envOf(vars))
		return err
	}
	url := "postgres://app:s3cret@127.0.0.1:5432/app"

	err := load(nil, map[string]string{"PGMUX_UPSTREAM": url, "PGMUX_AUTH_TYPE": "hba"})
	require.ErrorContains(t, err, "auth_type is hba but auth_hba_file is not set")
	require.ErrorContains(t, err, "auth_hba_file can only be set in a pgbouncer.ini")
	require.NotContains(t, err.Error(), "s3cret")

	err = load([]string{"--upstream", url, "--auth-type", "cert"}, nil)
	require.ErrorContains(t, err, "auth_type is cert but client_tls_sslmode is disable")

	err = load(nil, map[string]string{"DATABASE_URL": url, "PGMUX_AUTH_TYPE": "md5"})
	require.NoError(t, err)

	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(ini, []byte("[databases]\napp = host=127.0.0.1\n[pgbouncer]\nauth_type = trust\n"), 0o600))
	err = load([]string{ini}, map[string]string{"PGMUX_AUTH_TYPE": "hba"})
	require.EqualError(t, err, ini+" with the environment and flags applied: auth_type is hba but auth_hba_file is not set")
	err = load([]string{ini, "--auth-type", "cert"}, nil)
	require.ErrorContains(t, err, "auth_type is cert")
	require.NoError(t, load([]string{ini}, nil))
}
