package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDiff(t *testing.T) {
	old := Default()
	old.Databases["keep"] = testDB("keep", "a")
	old.Databases["gone"] = testDB("gone", "b")
	old.Databases["secret"] = func() *Database { d := testDB("secret", "c"); d.Password = "pw-first"; return d }()
	old.Users["bob"] = &User{Name: "bob", PoolSize: 1, MaxUserConnections: -1, ReservePoolSize: -1}

	nw := old.Clone()
	require.NoError(t, Set(nw, "listen_port", "7000"))
	require.NoError(t, Set(nw, "default_pool_size", "50"))
	delete(nw.Databases, "gone")
	nw.Databases["new"] = testDB("new", "d")
	nw.Databases["keep"].PoolSize = 5
	nw.Databases["secret"].Password = "pw-second"
	nw.Users["bob"].PoolMode = PoolModeTransaction
	nw.Users["amy"] = newUser("amy")

	require.Equal(t, 1, old.Users["bob"].PoolSize, "Clone must be deep")
	require.Equal(t, PoolModeUnset, old.Users["bob"].PoolMode, "Clone must be deep")

	got := Diff(old, nw)
	require.Equal(t, []Change{
		{Section: "pgbouncer", Name: "listen_port", Kind: Changed, Old: "6432", New: "7000", Reloadable: false},
		{Section: "pgbouncer", Name: "default_pool_size", Kind: Changed, Old: "20", New: "50", Reloadable: true},
		{Section: "databases", Name: "gone", Kind: Removed, Old: "host=b port=5432 dbname=gone", Reloadable: true},
		{Section: "databases", Name: "keep", Kind: Changed, Old: "host=a port=5432 dbname=keep", New: "host=a port=5432 dbname=keep pool_size=5", Reloadable: true},
		{Section: "databases", Name: "new", Kind: Added, New: "host=d port=5432 dbname=new", Reloadable: true},
		{Section: "databases", Name: "secret", Kind: Changed, Old: "host=c port=5432 dbname=secret password=***",
			New: "host=c port=5432 dbname=secret password=*** (password changed)", Reloadable: true},
		{Section: "users", Name: "amy", Kind: Added, New: "", Reloadable: true},
		{Section: "users", Name: "bob", Kind: Changed, Old: "pool_size=1", New: "pool_mode=transaction pool_size=1", Reloadable: true},
	}, got)
	require.Equal(t, `[pgbouncer] listen_port changed: "6432" -> "7000" (needs restart)`, got[0].String())
	for _, ch := range got {
		require.NotContains(t, ch.String(), "pw-first")
		require.NotContains(t, ch.String(), "pw-second")
	}
	require.Empty(t, Diff(old, old.Clone()))
}

func TestDiffLoadedFiles(t *testing.T) {
	a, _, err := loadString(t, "[pgbouncer]\nlisten_addr = 127.0.0.1\n[databases]\nx = host=a\n")
	require.NoError(t, err)
	b, _, err := loadString(t, "[pgbouncer]\nlisten_addr = ::1\nunix_socket_dir = /run\n[databases]\nx = host=a\n")
	require.NoError(t, err)
	got := Diff(a, b)
	require.Len(t, got, 2)
	require.Equal(t, "listen_addr", got[0].Name)
	require.Equal(t, "unix_socket_dir", got[1].Name)
	require.False(t, got[0].Reloadable)
	require.False(t, got[1].Reloadable)
}

// testDB returns a [databases] entry with only host set.
func testDB(name, host string) *Database {
	d := newDatabase(name)
	d.Host = host
	return d
}
