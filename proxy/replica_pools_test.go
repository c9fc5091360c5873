package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
)

// TestNoStandbyPoolAfterReload: a read that picked a standby before a reload moved its
// database's hosts, or removed the database, gets no standby pool (the primary serves
// it). A pool was made regardless: for a host the operator had taken away, and for a
// removed entry one that nothing would ever close.
func TestNoStandbyPoolAfterReload(t *testing.T) {
	parse := func(connstr string) *config.Database {
		db, _, err := config.ParseDatabase("app", connstr)
		require.NoError(t, err)
		return db
	}
	cfg := config.Default()
	cfg.Path = "test"
	db := parse("host=127.0.0.1,127.0.0.2 port=1,1 dbname=app")
	cfg.Databases["app"] = db
	srv, err := New(Options{Config: cfg, Logger: zap.NewNop(), Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	e, err := srv.pools.get(cfg, db, "u")
	require.NoError(t, err)
	h := srv.pools.hosts.forDB(db).Hosts()[0]

	require.NotNil(t, e.replicaPool(srv.pools, h), "a standby of the database's hosts")
	e.closeReplicas()

	e.mu.Lock()
	e.db = parse("host=127.0.0.3,127.0.0.4 port=1,1 dbname=app") // moved by a reload
	e.mu.Unlock()
	require.Nil(t, e.replicaPool(srv.pools, h), "a host the reload took away")

	e.mu.Lock()
	e.db = db
	e.mu.Unlock()
	e.removed.Store(true)
	require.Nil(t, e.replicaPool(srv.pools, h), "an entry the reload removed")
	require.Empty(t, e.closeReplicas())
}
