package proxy

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestHBAPathFromURL: a configuration built from an upstream URL has no ini directory, so
// a relative auth_hba_file is opened as written, not joined to the (redacted) URL; with no
// auth_hba_file at all the error says so instead of reading a directory.
func TestHBAPathFromURL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("hba.conf", []byte("host all all 127.0.0.1/32 trust\n"), 0o600))
	cfg, err := config.FromURL("postgres://app:s3cret@127.0.0.1:5432/app")
	require.NoError(t, err)
	cfg.AuthType, cfg.AuthHBAFile = config.AuthHBA, "hba.conf"
	_, err = loadHBA(cfg)
	require.NoError(t, err)

	cfg.AuthHBAFile = ""
	_, err = loadHBA(cfg)
	require.EqualError(t, err, "auth_type is hba but auth_hba_file is not set")
	cfg = config.Default()
	cfg.Path, cfg.AuthType = dir+"/pgbouncer.ini", config.AuthHBA
	_, err = loadHBA(cfg)
	require.EqualError(t, err, "auth_type is hba but auth_hba_file is not set")
}
