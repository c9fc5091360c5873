package faults

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// clientLoops runs a test with the client loop on (the default) and off: a request that
// must dial, or wait for a shared limit, leaves the loop for a goroutine either way, but
// the loop's request comes to it by another road.
var clientLoops = []string{"1", "0"}

// TestCancelWhileWaitingLimit: with max_db_connections (or max_user_connections) 1 held
// by a client in a transaction, and default_pool_size 2, a second client's INSERT has
// room in its pool but not under the shared limit, and waits for a slot of it. A cancel
// request for it was dropped (the wait was not the pool's queue of lessees Withdraw
// looks in): the INSERT got no answer, then ran once the holder committed, and its row
// was in t. Now it is answered 57014 at once, while the holder still holds the slot;
// after the commit the client goes on as usual and no row was written.
func TestCancelWhileWaitingLimit(t *testing.T) {
	pg, db, count := cancelDB(t, "cancelwaitlimit")

	for _, limit := range []string{"max_db_connections", "max_user_connections"} {
		for _, loop := range clientLoops {
			for _, tc := range cancelCases {
				t.Run(limit+"/client_loop="+loop+"/"+tc.name, func(t *testing.T) {
					m := startMux(t, pg, bouncer{PoolSize: 2, Extra: []string{limit + " = 1", "client_loop = " + loop}})
					cancelBehindTransaction(t, m, db, tc, count, nil)
					requireServersAccounted(t, m, pg, db, db)
				})
			}
		}
	}
}

// TestCancelWhileDialing: with default_pool_size 2 and one server held in a
// transaction, a second client's INSERT makes pgmux dial a second server, whose
// connection a relay holds before PostgreSQL sees it. A cancel request for the INSERT
// was dropped: the INSERT waited for the dial and ran on the new server. Now it is
// answered 57014 at once, while the dial is still held; the server dialed comes to the
// pool (no connection is lost or left half open), the INSERT never runs on it, and the
// client's next request is served as usual.
func TestCancelWhileDialing(t *testing.T) {
	pg, db, count := cancelDB(t, "cancelwaitdial")
	const alias = "cancelwaitdial_relayed"

	for _, loop := range clientLoops {
		for _, tc := range cancelCases {
			t.Run("client_loop="+loop+"/"+tc.name, func(t *testing.T) {
				// The relay holds the pool's second connection, the INSERT's, until released.
				var accepted atomic.Int32
				released := make(chan struct{})
				port, _ := pg.Relay(t, func(n int) <-chan struct{} {
					accepted.Store(int32(n))
					if n == 2 {
						return released
					}
					return nil
				})
				m := startMux(t, pg, bouncer{PoolSize: 2, Extra: []string{"client_loop = " + loop},
					Databases: []string{fmt.Sprintf("%s = host=127.0.0.1 port=%d dbname=%s", alias, port, db)}})
				cancelBehindTransaction(t, m, alias, tc, count, func() {
					require.EqualValues(t, 2, accepted.Load(), "the canceled request was not waiting for a dial")
					close(released)
				})
				requireServersAccounted(t, m, pg, alias, db)
			})
		}
	}
}

// requireServersAccounted requires that, once nothing runs, every backend PostgreSQL has
// for the app user in realDB is a server SHOW SERVERS lists for the pool of db, and
// SHOW POOLS counts them all: none was lost by the pool nor left open outside it.
func requireServersAccounted(t *testing.T, m *mux, pg *pgtest.Server, db, realDB string) {
	t.Helper()
	adm := connect(t, m.URL("admin", "adminpass", "pgbouncer"))
	super := superConn(t, pg, realDB)
	var listed, pooled, backends int64
	eventually(t, 10*time.Second, "servers unaccounted for", func() bool {
		listed, pooled = 0, 0
		showEach(t, adm, "SHOW SERVERS", func(r map[string]any) {
			if r["database"] == db && r["user"] == pgtest.AppUser {
				listed++
			}
		})
		showEach(t, adm, "SHOW POOLS", func(r map[string]any) {
			if r["database"] == db && r["user"] == pgtest.AppUser {
				for _, col := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
					v, err := strconv.ParseInt(fmt.Sprint(r[col]), 10, 64)
					require.NoError(t, err, col)
					pooled += v
				}
			}
		})
		backends = queryInt(t, super, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2",
			realDB, pgtest.AppUser)
		return listed == backends && pooled == backends && backends > 0
	})
	t.Logf("servers: %d listed, %d pooled, %d backends", listed, pooled, backends)
}
