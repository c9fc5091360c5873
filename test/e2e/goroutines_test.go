package e2e

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestIdleClientsHoldNoGoroutine connects 2,000 clients that speak the protocol by hand
// (no driver goroutines on the test's side) and checks that pgmux, running in this
// process, holds no goroutine per idle client: idle clients wait in the parker's epoll set
// (proxy/park_linux.go). It then opens a transaction on a few clients and checks that an
// active client holds no goroutine with client_loop on, nor does a server connection the
// loop reads (with client_loop off: one per client, its session's, and the reader of each
// server connection dialled for them, which stays while the server idles in the pool),
// and that once the clients are idle again nothing is left beyond those readers.
func TestIdleClientsHoldNoGoroutine(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "idlegor")
	const clients, active = 2000, 10
	m := startMux(t, pg, bouncer{AuthType: "trust", PoolSize: active, MaxClientConn: clients + 10})

	// One client first, so that the pool's first server connection and its reader are
	// part of the baseline (and closed again: a server idles without a goroutine too).
	warm := loginRaw(t, m, db)
	warm.query("SELECT 1")
	warm.msg('X', nil)
	warm.nc.Close()
	settle := func(ok func(int) bool) int {
		var n int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			runtime.GC()
			if n = runtime.NumGoroutine(); ok(n) {
				break
			}
		}
		return n
	}
	g0 := settle(func(int) bool { return len(m.Srv.Sessions()) == 0 })

	conns := make([]*rawConn, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i] = loginRaw(t, m, db)
		}()
	}
	wg.Wait()
	require.False(t, t.Failed(), "a client failed to log in")
	// Parking is nearly immediate past eagerParkClients logins and after a second of silence
	// for the first ones: wait for it, then the count must not depend on the clients.
	const slack = 64 // timers, the parker, the pool's maintenance, the GC's workers
	idle := settle(func(n int) bool { return n-g0 < slack })
	t.Logf("%d idle clients: %d goroutines, %d at the baseline (%+d)", clients, idle, g0, idle-g0)
	require.Less(t, idle-g0, slack, "idle clients keep goroutines: %d more for %d clients", idle-g0, clients)

	// Every client is alive and answers (its session resumes from the parker and parks
	// again).
	for i, c := range conns {
		require.Equal(t, []string{fmt.Sprint(i)}, c.query(fmt.Sprintf("SELECT %d", i)), "client %d", i)
	}

	// Those that queried last park again after a second of silence.
	idle = settle(func(n int) bool { return n-g0 < slack })
	require.Less(t, idle-g0, slack, "clients that queried keep their goroutines")

	// Active clients: a transaction holds a server each until COMMIT. Each server
	// connection dialled for them has a reader goroutine of its own (pool/conn.go
	// Conn.run, per server, not per client); beyond those, with client_loop on (the
	// default) an active client has no goroutine, and with it off one, its session's.
	admin := pg.Connect(t, pgtest.SuperUser, "", db)
	servers0 := serverConns(context.Background(), t, admin, db, pgtest.AppUser)
	for _, c := range conns[:active] {
		c.query("BEGIN")
		c.query("SELECT 1")
	}
	busy := settle(func(n int) bool { return n-idle <= 2*active })
	dialled := serverConns(context.Background(), t, admin, db, pgtest.AppUser) - servers0
	loops := m.Srv.Config().ClientLoop
	readers := dialled // a reader goroutine per server connection dialled (pool/conn.go Conn.run)
	if loops {
		readers = 0 // the loop reads them (pool/loopread.go): no goroutine
	}
	perActive := float64(busy-idle-readers) / active
	t.Logf("%d clients in a transaction (client_loop %v): %d goroutines, %d server connections dialled, "+
		"%.1f goroutines per active client beyond their readers (%d)", active, loops, busy, dialled, perActive, readers)
	if loops {
		// Slack for a goroutine of the runtime or a timer counted meanwhile: one per
		// client would be 1.0.
		require.LessOrEqual(t, perActive, 0.3, "an active client on the loop holds no goroutine")
	} else {
		require.LessOrEqual(t, perActive, 1.0, "goroutines per active client: its session's")
	}
	for _, c := range conns[:active] {
		c.query("COMMIT")
	}
	// Once they park again, what is left is per server connection, and only with
	// client_loop off: each keeps a reader goroutine while it idles in the pool
	// (pool/conn.go Conn.run); the loop reads its servers without one. The baseline's
	// server, closed again, had one or none.
	servers := serverConns(context.Background(), t, admin, db, pgtest.AppUser)
	left := servers - 1
	if loops {
		left = 2 // slack for a goroutine of the runtime or a timer counted meanwhile
	}
	back := settle(func(n int) bool { return n-g0 <= left })
	t.Logf("clients idle again: %d goroutines (%+d) with %d idle server connections", back, back-g0, servers)
	require.LessOrEqual(t, back-g0, left, "clients back to idle still hold goroutines")
	for _, c := range conns {
		c.msg('X', nil)
		c.nc.Close()
	}
	for i := 0; i < 500 && len(m.Srv.Sessions()) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	require.Empty(t, m.Srv.Sessions())
}

// loginRaw logs a hand-written client in under trust authentication; its socket has no
// deadline (it idles for as long as the test runs) and closes at cleanup.
func loginRaw(t *testing.T, m *mux, db string) *rawConn {
	c := dialRaw(t, m.Host, m.Port)
	c.startup(0, "user", pgtest.AppUser, "database", db)
	c.finishLogin()
	require.NoError(t, c.nc.SetDeadline(time.Time{}))
	return c
}
