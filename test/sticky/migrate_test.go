package sticky

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

var (
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRe    = regexp.MustCompile(`number of failed transactions: (\d+)`)
)

// migrationLock is the advisory lock key both migrators take, as Ecto's
// migration_lock: :pg_advisory_lock and similar tools do.
const migrationLock = 424242

// TestMigrationLock runs two migrators at once through the transaction-mode URL: each
// takes a session advisory lock in one statement, runs DDL in several later
// transactions, and unlocks in a last statement. The lock must serialize them — the
// second waits for the lock and starts its DDL only after the first unlocked — while 50
// pgbench clients keep running over a pool of 20 with no error.
func TestMigrationLock(t *testing.T) {
	m := startMux(t, setup{poolSize: 20})
	pgbench := m.pg.RequireBin(t, "pgbench")
	db := m.pg.NewDatabase(t, "migrate")
	env := m.env(db)
	out, err := muxtest.RunCmd(t, 2*time.Minute, env, pgbench, "-i", "-s", "1", "-q")
	require.NoError(t, err, "pgbench -i:\n%s", out)
	direct := m.direct(t, db)
	_, err = direct.Exec(ctxT(t), `CREATE TABLE migration_log (id bigserial PRIMARY KEY, who text, step int);
		GRANT ALL ON migration_log, migration_log_id_seq TO PUBLIC`)
	require.NoError(t, err)

	// Background traffic: pgbench's TPC-B-like script, 50 clients over the pool of 20.
	type benchResult struct {
		out string
		err error
	}
	bench := make(chan benchResult, 1)
	benchDone := make(chan struct{})
	go func() {
		defer close(benchDone)
		out, err := muxtest.RunCmd(t, time.Minute, env, pgbench, "-n", "-c", "50", "-j", "4", "-T", "8")
		bench <- benchResult{out, err}
	}()
	t.Cleanup(func() { <-benchDone }) // before the database is dropped

	var (
		mu     sync.Mutex
		events []string // "<who> <what>", in the order they happened
		order  atomic.Int32
	)
	record := func(who, what string) {
		mu.Lock()
		events = append(events, who+" "+what)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// otherWaits polls PostgreSQL until some backend waits on the migration lock.
	otherWaits := func() error {
		for ctx.Err() == nil {
			var n int
			if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_locks
				WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, migrationLock).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return ctx.Err()
	}
	migrators := map[string]*pgx.Conn{"a": m.connect(t, db), "b": m.connect(t, db)}
	migrate := func(who string, conn *pgx.Conn) error {
		// An argument makes pgx use the extended protocol with a named statement: the
		// statement is classified when prepared and pins at Bind.
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		record(who, "locked")
		first := order.Add(1) == 1
		for i := 0; i < 3; i++ {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				ddl := fmt.Sprintf("CREATE TABLE mig_%s_%d (id int PRIMARY KEY, v text)", who, i)
				if i > 0 {
					ddl = fmt.Sprintf("ALTER TABLE mig_%s_0 ADD COLUMN c%d int", who, i)
				}
				if _, err := tx.Exec(ctx, ddl); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO migration_log (who, step) VALUES ($1, $2)", who, i)
				return err
			})
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
			record(who, "ddl"+strconv.Itoa(i))
		}
		if first {
			// Hold the lock until the other migrator is seen waiting for it.
			if err := otherWaits(); err != nil {
				return fmt.Errorf("waiting for the other migrator to queue: %w", err)
			}
		}
		record(who, "unlocking")
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", migrationLock).Scan(&ok); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
		if !ok {
			return fmt.Errorf("unlock: the lock was not held by this session (it ran on another server)")
		}
		return nil
	}
	time.Sleep(time.Second) // let pgbench get going
	errs := make(chan error, 2)
	for who, conn := range migrators {
		go func() { errs <- migrate(who, conn) }()
	}
	var failures []error
	for range migrators {
		if err := <-errs; err != nil {
			failures = append(failures, err)
		}
	}
	require.Empty(t, failures, "events: %v", events)

	// The order of events: one migrator's whole run, then the other's.
	require.Len(t, events, 10, "%v", events)
	a, b := events[0][:1], events[5][:1]
	require.NotEqual(t, a, b, "%v", events)
	want := []string{a + " locked", a + " ddl0", a + " ddl1", a + " ddl2", a + " unlocking",
		b + " locked", b + " ddl0", b + " ddl1", b + " ddl2", b + " unlocking"}
	require.Equal(t, want, events)
	// PostgreSQL's own record agrees: the second migrator's DDL committed after the first's.
	rows, err := direct.Query(ctxT(t), "SELECT who FROM migration_log ORDER BY id")
	require.NoError(t, err)
	whos, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{a, a, a, b, b, b}, whos)
	var held int
	require.NoError(t, direct.QueryRow(ctxT(t), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`).Scan(&held))
	require.Zero(t, held, "advisory locks left behind")

	// After unlocking, both migrators are back in transaction pooling.
	adm := m.admin(t)
	for _, conn := range migrators {
		waitPinReason(t, adm, db, conn, "")
	}

	r := <-bench
	require.NoError(t, r.err, "pgbench:\n%s", r.out)
	got := processedRe.FindStringSubmatch(r.out)
	require.NotNil(t, got, "no processed count in:\n%s", r.out)
	n, _ := strconv.Atoi(got[1])
	require.Positive(t, n, r.out)
	failed := failedRe.FindStringSubmatch(r.out)
	require.NotNil(t, failed, "no failed count in:\n%s", r.out)
	require.Equal(t, "0", failed[1], r.out)
	t.Logf("pgbench alongside the migrations: %d transactions", n)
}
