package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestAutodbIdleTimeout: the pool of a database reached through "*" is dropped, figures
// and all, once it has had no client and no server connection for autodb_idle_timeout, as
// PgBouncer frees its auto-databases; one whose client stays connected is kept, and a
// client coming back later gets a new pool. pgmux kept a pool for every name a client
// ever asked for until a reload.
func TestAutodbIdleTimeout(t *testing.T) {
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{
		extra: map[string]string{"autodb_idle_timeout": "1", "server_idle_timeout": "1"},
		dbs:   map[string]string{"*": fmt.Sprintf("host=%s port=%d", pg.Host, pg.Port)},
	})
	gone, kept := pg.NewDatabase(t, "autogone"), pg.NewDatabase(t, "autokept")
	configured := h.connect(t, "app", "app", false) // a [databases] entry: its pool stays, used or not
	execSQL(t, configured, "SELECT 1")
	require.NoError(t, configured.Close(t.Context()))
	c := h.connect(t, "app", gone, false)
	execSQL(t, c, "SELECT 1")
	require.NoError(t, c.Close(t.Context()))
	stay := h.connect(t, "app", kept, false)
	execSQL(t, stay, "SELECT 1")

	adm := h.admin(t)
	pools := func() map[string]bool {
		_, rows := show(t, adm, "SHOW POOLS")
		out := map[string]bool{}
		for _, r := range rows {
			out[r["database"].(string)] = true
		}
		return out
	}
	require.True(t, pools()[gone])
	deadline := time.Now().Add(20 * time.Second)
	for pools()[gone] && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	p := pools()
	require.False(t, p[gone], "the unused auto-database's pool is still there")
	require.True(t, p[kept], "the pool of an auto-database with a connected client was dropped")
	require.True(t, p["app"], "a configured database's pool was dropped")
	execSQL(t, stay, "SELECT 1")

	again := h.connect(t, "app", gone, false) // a new pool for the name
	execSQL(t, again, "SELECT 1")
	require.True(t, pools()[gone])
}
