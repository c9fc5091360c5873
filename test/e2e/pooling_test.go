package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestConcurrentTransactions runs 100 pgx clients over a transaction-mode pool of 5: each
// inserts rows tagged with its id in explicit transactions and must read back exactly its
// own rows, while PostgreSQL never sees more than 5 server connections. Inside each
// transaction a transaction-local setting and the backend pid must stay the client's own,
// which catches one server handed to two clients at once.
func TestConcurrentTransactions(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "concurrent")
	const (
		poolSize = 5
		clients  = 100
		txns     = 5
		rowsPer  = 3
	)
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: poolSize})
	setup := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := setup.Exec(ctx, "CREATE TABLE t (client int NOT NULL, txn int NOT NULL, seq int NOT NULL)")
	require.NoError(t, err)

	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
	}
	admin := pg.Connect(t, pgtest.SuperUser, "", db)
	watchCtx, stopWatch := context.WithCancel(ctx)
	peakc := watchServerConns(watchCtx, admin, db, pgtest.AppUser)

	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for id := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- clientWork(ctx, conns[id], id, txns, rowsPer)
		}()
	}
	wg.Wait()
	stopWatch()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	p := <-peakc
	require.NoError(t, p.err)
	require.LessOrEqual(t, p.max, poolSize, "server connections of %s/%s", db, pgtest.AppUser)
	require.Positive(t, p.max)

	var total int
	require.NoError(t, setup.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&total))
	require.Equal(t, clients*txns*rowsPer, total)
}

// clientWork is one client's share of TestConcurrentTransactions.
func clientWork(ctx context.Context, conn *pgx.Conn, id, txns, rowsPer int) error {
	for txn := range txns {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("client %d: begin: %w", id, err)
		}
		var pid int
		var owner string
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid(), set_config('e2e.owner', $1, true)", fmt.Sprint(id)).Scan(&pid, &owner); err != nil {
			return fmt.Errorf("client %d: set owner: %w", id, err)
		}
		for seq := range rowsPer {
			if _, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, $2, $3)", id, txn, seq); err != nil {
				return fmt.Errorf("client %d: insert: %w", id, err)
			}
		}
		var pid2 int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('e2e.owner')").Scan(&pid2, &owner); err != nil {
			return fmt.Errorf("client %d: read owner: %w", id, err)
		}
		if pid2 != pid || owner != fmt.Sprint(id) {
			return fmt.Errorf("client %d: transaction moved: backend %d then %d, owner %q", id, pid, pid2, owner)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("client %d: commit: %w", id, err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT client, txn, seq FROM t WHERE client = $1 ORDER BY txn, seq", id)
	if err != nil {
		return fmt.Errorf("client %d: read back: %w", id, err)
	}
	type row struct{ client, txn, seq int }
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.client, &x.txn, &x.seq)
	})
	if err != nil {
		return fmt.Errorf("client %d: read back: %w", id, err)
	}
	if len(got) != txns*rowsPer {
		return fmt.Errorf("client %d: read back %d rows, want %d", id, len(got), txns*rowsPer)
	}
	for i, r := range got {
		if want := (row{id, i / rowsPer, i % rowsPer}); r != want {
			return fmt.Errorf("client %d: row %d is %+v, want %+v", id, i, r, want)
		}
	}
	return nil
}

// TestShortClientsReuseServers connects many short-lived clients, each running one query
// and leaving at once: the transaction-mode server connection must go back to the pool
// every time, not be closed because the client left while pgmux was still finishing the
// answer it had just relayed. PostgreSQL's count of sessions opened in the database
// tells how many server connections pgmux dialed.
func TestShortClientsReuseServers(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "short")
	const (
		poolSize = 10
		workers  = 10
		each     = 30
	)
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: poolSize})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := pg.Connect(t, pgtest.SuperUser, "", db)
	sessions := func() int64 {
		var n int64
		_, err := admin.Exec(ctx, "SELECT pg_stat_clear_snapshot()")
		require.NoError(t, err)
		require.NoError(t, admin.QueryRow(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = $1", db).Scan(&n))
		return n
	}
	before := sessions()
	// pgbench -C connects for every transaction and leaves as soon as it has the answer.
	script := filepath.Join(t.TempDir(), "one.sql")
	require.NoError(t, os.WriteFile(script, []byte("SELECT 1;\n"), 0o644))
	out, err := muxtest.RunCmd(t, time.Minute, m.Env(pgtest.AppUser, pgtest.AppPassword, db), pg.RequireBin(t, "pgbench"),
		"-n", "-C", "-c", strconv.Itoa(workers), "-j", "2", "-t", strconv.Itoa(each), "-f", script)
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("processed: %d/%d", workers*each, workers*each), out)
	// Session counts are reported when a backend ends; end ours.
	require.NoError(t, m.Srv.Close())
	require.Eventually(t, func() bool { return serverConns(ctx, t, admin, db, pgtest.AppUser) == 0 }, 10*time.Second, 20*time.Millisecond)
	opened := sessions() - before
	t.Logf("opened %d", opened)
	require.LessOrEqual(t, opened, int64(poolSize), "%d short clients made pgmux open %d server connections", workers*each, opened)
}

// TestIdleStormParksAtOnce opens 600 clients that log in and then stay idle, the way a
// fleet of app instances starts: past a few hundred clients each one that has sent
// nothing within a few milliseconds of logging in is parked (proxy's eagerParkWait), so
// pgmux does not hold a goroutine per idle client even for a second (the runtime never
// frees a goroutine's descriptor).
// Every client then still answers a query.
func TestIdleStormParksAtOnce(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "storm")
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: 5})
	url := m.URL(pgtest.AppUser, pgtest.AppPassword, db)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients = 600
	g0 := runtime.NumGoroutine()
	conns := make([]*pgconn.PgConn, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	sem := make(chan struct{}, 50)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := pgconn.Connect(ctx, url)
			conns[i] = c
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Past eagerParkWait but well within parkAfter (1 s) of the last login: without
	// eager parking every session's goroutine would still be blocked reading its client.
	time.Sleep(4 * eagerWait)
	extra := runtime.NumGoroutine() - g0
	t.Logf("%d idle clients, %d goroutines more than before", clients, extra)
	require.Less(t, extra, clients-eagerAbove, "idle clients past %d keep a goroutine each", eagerAbove)
	for i, c := range conns {
		res := c.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil, nil).Read()
		require.NoError(t, res.Err)
		require.Equal(t, strconv.Itoa(i), string(res.Rows[0][0]))
	}
	for _, c := range conns {
		require.NoError(t, c.Close(ctx))
	}
	// Every session ends (before pgmux shuts down at cleanup).
	for i := 0; i < 200 && len(m.Srv.Sessions()) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	require.Empty(t, m.Srv.Sessions())
}

// eagerAbove and eagerWait mirror proxy's eagerParkClients and eagerParkWait.
const (
	eagerAbove = 256
	eagerWait  = 25 * time.Millisecond
)
