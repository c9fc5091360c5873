package multihost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// replicaPair is a primary, a standby (with conf lines) and pgmux with one database
// "app" over both, standby listed first, with the given [databases] options; the ini can
// be rewritten and reloaded.
type replicaPair struct {
	*pair
	ini *muxtest.Ini
}

func startReplicaPair(t *testing.T, standbyConf []string, extra []string, dbOpts string) *replicaPair {
	t.Helper()
	primary := pgtest.StartPrivate(t)
	standby := primary.StartStandby(t, standbyConf...)
	reg := prometheus.NewRegistry()
	ini := &muxtest.Ini{
		Databases: []string{replicaDB(primary, standby, dbOpts)},
		Users:     map[string]string{pgtest.AppUser: pgtest.AppPassword, "admin": "adminpass"},
		Extra:     append([]string{"admin_users = admin", "server_login_retry = 0.2"}, extra...),
	}
	m := muxtest.Start(t, primary, muxtest.Options{Ini: ini, Registry: reg, Reload: true, Stop: muxtest.Close})
	return &replicaPair{pair: &pair{primary: primary, standby: standby, mux: m, reg: reg}, ini: ini}
}

func replicaDB(primary, standby *pgtest.Server, opts string) string {
	return fmt.Sprintf("app = host=127.0.0.1,[::1] port=%d,%d dbname=app target_session_attrs=read-write %s",
		standby.Port, primary.Port, opts)
}

// ready runs sql on the primary (as the superuser, in app; none when empty) and waits
// until the standby has replayed it and pgmux has checked the standby.
func (p *replicaPair) ready(t *testing.T, sql string) *replicaPair {
	t.Helper()
	if sql != "" {
		p.primary.ExecDB(t, "app", sql)
	}
	p.waitReplayed(t)
	p.waitStandbyReady(t)
	return p
}

// reload rewrites the [databases] line with opts and reloads pgmux.
func (p *replicaPair) reload(t *testing.T, opts string) {
	t.Helper()
	p.ini.Databases = []string{replicaDB(p.primary, p.standby, opts)}
	p.ini.Write(t, filepath.Dir(p.mux.Ini), p.primary, 6432)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := p.admin(t).Exec(ctx, "RELOAD")
	require.NoError(t, err)
}

// waitStandbyReady waits until pgmux knows the standby's role and lag (its checker ran),
// so that reads can go there.
func (p *replicaPair) waitStandbyReady(t *testing.T) {
	t.Helper()
	p.connect(t, "app") // the hosts are watched from the database's first pool on
	adm := p.admin(t)
	require.Eventually(t, func() bool {
		r := hostRow(show(t, adm, "SHOW HOSTS"), p.standby.Port)
		return r != nil && r["role"] == "standby" && r["replication_lag_ms"] != nil
	}, 20*time.Second, 20*time.Millisecond, "pgmux checked the standby")
}

// waitReplayed waits until the standby has replayed everything the primary wrote so far.
// The test clusters commit with synchronous_commit = off, so the last commits may still
// sit in the primary's WAL buffers, past its flushed position. A transaction that writes
// WAL of its own (a transactional logical message) and commits synchronously flushes
// everything up to its commit record, and the flushed position then covers every earlier
// commit. A transaction that only takes an xid (txid_current()) would not do: PostgreSQL
// commits a transaction that wrote no WAL before its commit record asynchronously, and
// the flushed position may then stop short of a commit made just before. (The insert
// position would not do either: on a page boundary it points past the next page's header,
// which no standby replays until another record comes.)
func (p *replicaPair) waitReplayed(t *testing.T) {
	t.Helper()
	pc := p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	sc := p.standby.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var lsn string
	_, err := pc.Exec(ctx, "SET synchronous_commit = on")
	require.NoError(t, err)
	var msg string
	require.NoError(t, pc.QueryRow(ctx, "SELECT pg_logical_emit_message(true, 'pgtest', 'replayed')::text").Scan(&msg))
	require.NoError(t, pc.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&lsn))
	require.Eventually(t, func() bool {
		var ok bool
		require.NoError(t, sc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok))
		return ok
	}, 30*time.Second, 10*time.Millisecond, "the standby replays the primary's WAL")
}

// waitPrimaryCheckedAfter waits until the hosts' checker has sent a check of the primary
// after after (and read its WAL position): until SHOW HOSTS shows two checks of it
// completed after after. The checker runs one check at a time, so the second was sent
// after the first completed. (A fixed sleep of the checker's interval and a margin
// fails when a loaded machine delays a check past the margin.) The checked time is
// known from checked_ms_ago only within the SHOW's round trip: the bounds used are
// the safe ones.
func (p *replicaPair) waitPrimaryCheckedAfter(t *testing.T, after time.Time) {
	t.Helper()
	adm := p.admin(t)
	// checked returns bounds on when the primary's last check completed.
	checked := func() (lo, hi time.Time, ok bool) {
		before := time.Now()
		r := hostRow(show(t, adm, "SHOW HOSTS"), p.primary.Port)
		now := time.Now()
		ago, ok := r["checked_ms_ago"].(int64)
		if !ok {
			return lo, hi, false
		}
		d := time.Duration(ago) * time.Millisecond
		return before.Add(-d - time.Millisecond), now.Add(-d), true
	}
	var firstHi time.Time
	require.Eventually(t, func() bool {
		lo, hi, ok := checked()
		if ok && lo.After(after) {
			firstHi = hi
			return true
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "a check of the primary completes")
	require.Eventually(t, func() bool {
		lo, _, ok := checked()
		return ok && lo.After(firstHi)
	}, 20*time.Second, 20*time.Millisecond, "a check of the primary sent after the write completes")
}

// reachesStandby reports whether one of up to three plain reads on c runs on the
// standby. A read right after another request can legitimately run on the primary:
// the previous answer's ReadyForQuery reaches the client before pgmux ends that link,
// and a request read in between reuses the linked server (only a standby link is waited
// for: awaitReplicaUnlink); the next read is routed.
func reachesStandby(t *testing.T, c *pgx.Conn) bool {
	t.Helper()
	for i := 0; i < 3; i++ {
		if _, standby := server(t, c); standby {
			return true
		}
	}
	return false
}

// primaryReasons lists why reads went to the primary (pgmux_replica_primary_reads_total
// by reason), for a failure message.
func primaryReasons(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	var out []string
	for _, m := range series(t, reg, "pgmux_replica_primary_reads_total", nil) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				out = append(out, fmt.Sprintf("%s=%v", l.GetValue(), m.GetCounter().GetValue()))
			}
		}
	}
	return "reads sent to the primary by reason: " + strings.Join(out, " ")
}

// counter sums a counter's (or a histogram's count's) values over the series whose
// labels include labels.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	var sum float64
	for _, m := range series(t, reg, name, labels) {
		if h := m.GetHistogram(); h != nil {
			sum += float64(h.GetSampleCount())
		} else {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// histogramMean is a histogram's mean over all its series, and its count.
func histogramMean(t *testing.T, reg *prometheus.Registry, name string) (mean time.Duration, count uint64) {
	t.Helper()
	var sum float64
	for _, m := range series(t, reg, name, nil) {
		sum += m.GetHistogram().GetSampleSum()
		count += m.GetHistogram().GetSampleCount()
	}
	if count == 0 {
		return 0, 0
	}
	return time.Duration(sum / float64(count) * float64(time.Second)), count
}

var failedTx = regexp.MustCompile(`number of failed transactions: (\d+)`)

// pgbenchActivity counts the app user's sessions on srv whose last statement is pgbench's
// -S SELECT.
func pgbenchActivity(t *testing.T, srv *pgtest.Server) int {
	t.Helper()
	c := srv.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var n int
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE usename = 'app' AND query LIKE 'SELECT abalance FROM pgbench_accounts%' AND pid <> pg_backend_pid()`).Scan(&n))
	return n
}

// TestReplicaAutoPgbench: with replica_reads=auto, pgbench -S through pgmux runs on the
// standby (its sessions there show pgbench's SELECT in pg_stat_activity, the primary's
// show none) in the simple, extended and prepared protocols; tpcb-like runs on the
// primary; no transaction fails.
func TestReplicaAutoPgbench(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=auto")
	pgbench := p.primary.RequireBin(t, "pgbench")
	direct := muxtest.LibpqEnv(p.primary.Host, p.primary.Port, pgtest.AppUser, pgtest.AppPassword, "app")
	out, err := muxtest.RunCmd(t, 2*time.Minute, direct, pgbench, "-i", "-s", "1", "-q")
	require.NoError(t, err, "pgbench -i:\n%s", out)
	p.waitReplayed(t)
	p.waitStandbyReady(t)
	env := p.mux.Env(pgtest.AppUser, pgtest.AppPassword, "app")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		before := counter(t, p.reg, "pgmux_replica_reads_total", nil)
		out, err := muxtest.RunCmd(t, 2*time.Minute, env, pgbench, "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200", "-n")
		require.NoError(t, err, "pgbench -S -M %s:\n%s", mode, out)
		m := failedTx.FindStringSubmatch(out)
		require.NotNil(t, m, out)
		require.Equal(t, "0", m[1], out)
		reads := counter(t, p.reg, "pgmux_replica_reads_total", nil) - before
		t.Logf("pgbench -S -M %s: %v of 800 reads on the standby", mode, reads)
		require.GreaterOrEqual(t, reads, 700.0, "pgbench -S -M %s: reads on the standby", mode)
	}
	require.Positive(t, pgbenchActivity(t, p.standby), "pg_stat_activity on the standby shows pgbench's SELECT")
	require.Zero(t, pgbenchActivity(t, p.primary), "the primary ran no pgbench -S SELECT")

	before := counter(t, p.reg, "pgmux_replica_reads_total", nil)
	out, err = muxtest.RunCmd(t, 2*time.Minute, env, pgbench, "-c", "4", "-j", "2", "-t", "100", "-n")
	require.NoError(t, err, "pgbench tpcb-like:\n%s", out)
	m := failedTx.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, "0", m[1], out)
	// pgbench's own "select count(*) from pgbench_branches" at start is a read.
	require.LessOrEqual(t, counter(t, p.reg, "pgmux_replica_reads_total", nil)-before, 1.0, "tpcb-like ran on the primary")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var hist int
	pc := p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	require.NoError(t, pc.QueryRow(ctx, "SELECT count(*) FROM pgbench_history").Scan(&hist))
	require.Equal(t, 400, hist, "every tpcb-like transaction committed on the primary")

	// SHOW SERVERS lists the standby's connections with their role.
	var roles = map[any]int{}
	for _, r := range show(t, p.admin(t), "SHOW SERVERS") {
		roles[r["role"]]++
	}
	require.Positive(t, roles["standby"], "SHOW SERVERS: %v", roles)
	require.Positive(t, roles["primary"], "SHOW SERVERS: %v", roles)
	// SHOW HOSTS counts the reads each standby served; SHOW DATABASES names the mode.
	adm := p.admin(t)
	sb, pr := hostRow(show(t, adm, "SHOW HOSTS"), p.standby.Port), hostRow(show(t, adm, "SHOW HOSTS"), p.primary.Port)
	require.GreaterOrEqual(t, sb["standby_reads"], int64(2400))
	require.Equal(t, int64(0), pr["standby_reads"])
	for _, r := range show(t, adm, "SHOW DATABASES") {
		if r["name"] == "app" {
			require.Equal(t, "auto", r["replica_reads"])
		}
	}
}

// TestReplica25006: a SELECT the lexer passes as read-only that writes (through a view
// calling a writing function) is refused by the standby with 25006 and sent to the
// primary: the client sees its answer and no error, in the simple and extended protocols;
// a plain read goes to the standby.
func TestReplica25006(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=auto").ready(t, `CREATE TABLE hits (n int);
		CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'INSERT INTO hits VALUES (1) RETURNING 1';
		CREATE VIEW bumped AS SELECT bump() AS x;
		GRANT ALL ON hits, bumped TO app`)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			_, standby := server(t, c)
			require.True(t, standby, "a plain read goes to the standby")
			retries := counter(t, p.reg, "pgmux_replica_retries_total", nil)
			for i := 0; i < 3; i++ {
				if i == 1 {
					// A setting pgmux replays on each new server before the request: the
					// hold leaves its hidden answers alone.
					_, err := c.Exec(ctx, "SET application_name = 'bump"+strconv.Itoa(int(mode))+"'")
					require.NoError(t, err)
				}
				var x int
				var inRecovery bool
				require.NoError(t, c.QueryRow(ctx, "SELECT x, pg_is_in_recovery() FROM bumped").Scan(&x, &inRecovery))
				require.Equal(t, 1, x)
				require.False(t, inRecovery, "answered by the primary")
			}
			require.GreaterOrEqual(t, counter(t, p.reg, "pgmux_replica_retries_total", nil)-retries, 1.0,
				"the standby's 25006 sent the read to the primary")
			require.True(t, reachesStandby(t, c), "the connection still reads from the standby; %s", primaryReasons(t, p.reg))
		})
	}
	var n int
	require.NoError(t, p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app").
		QueryRow(ctx, "SELECT count(*) FROM hits").Scan(&n))
	require.Equal(t, 12, n, "each SELECT wrote once, on the primary")
}

// TestReplicaExplicit: with replica_reads=explicit only transactions that declare
// themselves read-only go to the standby: BEGIN READ ONLY, pgx's read-only
// transactions, everything after SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
// (a write then fails as on the primary); plain SELECTs stay on the primary. RELOAD to
// replica_reads=off sends everything to the primary.
func TestReplicaExplicit(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE ex (n int); GRANT ALL ON ex TO app")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeCacheStatement, opTimeout)
	_, standby := server(t, c)
	require.False(t, standby, "explicit: a plain SELECT stays on the primary")

	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	_, standby = server(t, tx)
	require.True(t, standby, "pgx read-only transaction")
	require.NoError(t, tx.Commit(ctx))

	sc := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
	results, err := sc.PgConn().Exec(ctx, "BEGIN READ ONLY; SELECT pg_is_in_recovery()::text; COMMIT").ReadAll()
	require.NoError(t, err)
	require.Len(t, results, 3)
	inRecovery := string(results[1].Rows[0][0]) == "true"
	require.True(t, inRecovery, "BEGIN READ ONLY")

	// BEGIN READ ONLY through the extended protocol, as JDBC and Npgsql send it.
	pc := sc.PgConn()
	_, err = pc.ExecParams(ctx, "BEGIN READ ONLY", nil, nil, nil, nil).Close()
	require.NoError(t, err)
	res := pc.ExecParams(ctx, "SELECT pg_is_in_recovery()::text", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "true", string(res.Rows[0][0]), "extended-protocol BEGIN READ ONLY")
	_, err = pc.ExecParams(ctx, "COMMIT", nil, nil, nil, nil).Close()
	require.NoError(t, err)

	_, err = c.Exec(ctx, "INSERT INTO ex VALUES (1)")
	require.NoError(t, err, "a write goes to the primary")
	_, err = c.Exec(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
	require.NoError(t, err)
	// pgmux reads a changed setting back after the SET's answer; a request sent
	// meanwhile rides along on that server, and a read waits for the standby to replay
	// the INSERT above only up to replica_max_wait: under load (the CI runs every package
	// at once) more than one request may go to the primary before the reads settle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, standby = server(t, c); standby || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.True(t, standby, "after SET SESSION CHARACTERISTICS ... READ ONLY: reads reach the standby")
	for i := 0; i < 3; i++ {
		_, standby = server(t, c)
		require.True(t, standby, "after SET SESSION CHARACTERISTICS ... READ ONLY")
	}
	_, err = c.Exec(ctx, "INSERT INTO ex VALUES (2)")
	require.Equal(t, "25006", muxtest.PgError(t, err).Code, "a write in a read-only session fails as on the primary")
	_, err = c.Exec(ctx, "SET default_transaction_read_only = off")
	require.NoError(t, err)
	server(t, c) // as above
	_, standby = server(t, c)
	require.False(t, standby, "read-write again: the primary")

	p.reload(t, "replica_reads=off")
	tx, err = c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	_, standby = server(t, tx)
	require.False(t, standby, "replica_reads=off after RELOAD: the primary")
	require.NoError(t, tx.Rollback(ctx))
}

// applyFloor measures, without pgmux, how long after a commit on the primary its row is
// visible on the standby (polled every millisecond): what a read that waits for replay
// cannot beat.
func applyFloor(t *testing.T, p *replicaPair, samples int) time.Duration {
	t.Helper()
	pc := p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	sc := p.standby.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var total time.Duration
	for i := 0; i < samples; i++ {
		id := -1 - i
		_, err := pc.Exec(ctx, "INSERT INTO ryw0 VALUES ($1)", id)
		require.NoError(t, err)
		start := time.Now()
		for {
			var n int
			require.NoError(t, sc.QueryRow(ctx, "SELECT count(*) FROM ryw0 WHERE id = $1", id).Scan(&n))
			if n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
	}
	return total / time.Duration(samples)
}

// rywRounds is how many insert-then-read rounds TestReadYourWrites runs over its 20
// clients: 1,000 in CI, PGMUX_RYW_ROUNDS (the 10,000) when set.
func rywRounds(t *testing.T) int {
	if v := os.Getenv("PGMUX_RYW_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		return n
	}
	return 1000
}

var rywSeq atomic.Int64

// rywRun runs rounds of "insert a row, then read it" from clients connections through
// pgmux and returns how many reads missed their own row, how many reads ran on the
// standby, and the mean read latency.
func rywRun(t *testing.T, p *replicaPair, clients, rounds int, table string) (misses, onStandby int64, readMean time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var readNanos, reads, missed, standbyReads atomic.Int64
	errs := make(chan error, clients)
	per := rounds / clients
	for w := 0; w < clients; w++ {
		c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeCacheStatement, opTimeout)
		wg.Add(1)
		go func(w int, c *pgx.Conn) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for i := 0; i < per; i++ {
				id := int(rywSeq.Add(1)) // unique over every run of the test
				if _, err := c.Exec(ctx, "INSERT INTO "+table+" VALUES ($1)", id); err != nil {
					errs <- fmt.Errorf("client %d insert %d: %w", w, i, err)
					return
				}
				start := time.Now()
				var n int
				var standby bool
				if err := c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&n, &standby); err != nil {
					errs <- fmt.Errorf("client %d read %d: %w", w, i, err)
					return
				}
				readNanos.Add(int64(time.Since(start)))
				reads.Add(1)
				if n != 1 {
					missed.Add(1)
				}
				if standby {
					standbyReads.Add(1)
				}
			}
		}(w, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return missed.Load(), standbyReads.Load(), time.Duration(readNanos.Load() / max(reads.Load(), 1))
}

// TestReadYourWrites: with recovery_min_apply_delay = 200ms on the standby, 20 clients
// inserting a row and reading it back through replica_reads=auto never miss their row,
// and their reads run on the standby; with replica_max_wait=0 (read-your-writes off) the
// same rounds miss. The log gives the mean latency of a read that waited.
func TestReadYourWrites(t *testing.T) {
	p := startReplicaPair(t, []string{"recovery_min_apply_delay = '200ms'"}, nil, "replica_reads=auto replica_max_wait=2000").ready(t, `CREATE TABLE ryw (id int); CREATE INDEX ON ryw (id); GRANT ALL ON ryw TO app;
		CREATE TABLE ryw0 (id int); CREATE INDEX ON ryw0 (id); GRANT ALL ON ryw0 TO app`)
	floor := applyFloor(t, p, 10)
	misses, _, oneMean := rywRun(t, p, 1, 20, "ryw")
	require.Zero(t, misses)
	t.Logf("one client: a read after its write took %v on average (20 rounds); the commit alone shows on the "+
		"standby after %v (mean of 10, polled every ms, without pgmux)", oneMean, floor)
	rounds := rywRounds(t)
	start := time.Now()
	misses, onStandby, readMean := rywRun(t, p, 20, rounds, "ryw")
	waitMean, waits := histogramMean(t, p.reg, "pgmux_replica_ryw_wait_seconds")
	t.Logf("read-your-writes: %d rounds from 20 clients in %v: %d misses, %d reads on the standby, mean read %v; "+
		"%d reads waited for replay, mean wait %v; timeouts %v", rounds, time.Since(start).Round(time.Millisecond),
		misses, onStandby, readMean, waits, waitMean,
		counter(t, p.reg, "pgmux_replica_ryw_waits_total", map[string]string{"result": "timeout"}))
	require.Zero(t, misses, "no client misses its own row")
	require.Greater(t, onStandby, int64(rounds/2), "reads run on the standby")

	// A read well after the write: the hosts' checker (every second) has read the
	// primary's position since, so pgmux needs no round trip to the primary for it.
	c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeCacheStatement, opTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	fromCheck := counter(t, p.reg, "pgmux_replica_ryw_positions_total", map[string]string{"source": "check"})
	_, err := c.Exec(ctx, "INSERT INTO ryw VALUES (-100)")
	require.NoError(t, err)
	p.waitPrimaryCheckedAfter(t, time.Now())
	var n int
	var standby bool
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM ryw WHERE id = -100").Scan(&n, &standby))
	require.Equal(t, 1, n)
	require.True(t, standby)
	require.Equal(t, fromCheck+1, counter(t, p.reg, "pgmux_replica_ryw_positions_total", map[string]string{"source": "check"}),
		"the position came from the hosts' checker")

	p.reload(t, "replica_reads=auto replica_max_wait=0")
	misses, onStandby, readMean = rywRun(t, p, 20, 200, "ryw0")
	t.Logf("replica_max_wait=0: 200 rounds: %d misses, %d reads on the standby, mean read %v", misses, onStandby, readMean)
	require.Positive(t, misses, "without read-your-writes, reads on the delayed standby miss")
}

// TestReplicaAutoClients: replica_reads=auto with other shapes of requests. An error on
// the standby other than 25006 reaches the client as is and the connection goes on; SHOW
// runs on the standby; a pgx batch of reads runs on the standby, one with a write on the
// primary (whole); psql's reads run on the standby. replica_reads is set in [pgbouncer].
func TestReplicaAutoClients(t *testing.T) {
	// The [pgbouncer] setting this time, with no [databases] override.
	p := startReplicaPair(t, nil, []string{"replica_reads = auto"}, "").ready(t, "CREATE TABLE bt (n int); GRANT ALL ON bt TO app")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), mode, opTimeout)
			var x int
			err := c.QueryRow(ctx, "SELECT 1/0").Scan(&x)
			require.Equal(t, "22012", muxtest.PgError(t, err).Code)
			_, standby := server(t, c)
			require.True(t, standby, "the connection goes on, reading from the standby")
			var ro string
			require.NoError(t, c.QueryRow(ctx, "SHOW transaction_read_only").Scan(&ro))
			require.Equal(t, "on", ro, "SHOW ran on the standby")

			b := &pgx.Batch{}
			for i := 0; i < 3; i++ {
				b.Queue("SELECT pg_is_in_recovery()")
			}
			res := c.SendBatch(ctx, b)
			for i := 0; i < 3; i++ {
				var rec bool
				require.NoError(t, res.QueryRow().Scan(&rec))
				require.True(t, rec, "a batch of reads runs on the standby")
			}
			require.NoError(t, res.Close())

			b = &pgx.Batch{}
			b.Queue("SELECT pg_is_in_recovery()")
			b.Queue("INSERT INTO bt VALUES (1)")
			res = c.SendBatch(ctx, b)
			var rec bool
			require.NoError(t, res.QueryRow().Scan(&rec))
			require.False(t, rec, "a batch with a write runs on the primary")
			_, err = res.Exec()
			require.NoError(t, err)
			require.NoError(t, res.Close())
		})
	}
	psql := p.primary.RequireBin(t, "psql")
	out, err := muxtest.RunCmd(t, time.Minute, p.mux.Env(pgtest.AppUser, pgtest.AppPassword, "app"), psql,
		"-XAtc", "SELECT pg_is_in_recovery()")
	require.NoError(t, err, out)
	require.Equal(t, "t\n", out, "psql's read ran on the standby")
}

// TestReplicaFailover: with replica_reads=auto, when the primary stops and the standby
// is promoted, reads and writes go on against the new primary (no standby is left), and
// read-your-writes does not hold reads back.
func TestReplicaFailover(t *testing.T) {
	p := startReplicaPair(t, nil, []string{"failover_timeout = 30"}, "replica_reads=auto").ready(t, "CREATE TABLE fo (n int); GRANT ALL ON fo TO app")
	c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeCacheStatement, opTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := c.Exec(ctx, "INSERT INTO fo VALUES (1)")
	require.NoError(t, err)
	require.True(t, reachesStandby(t, c), primaryReasons(t, p.reg))

	p.primary.StopPostmaster(t, "fast")
	p.standby.Promote(t)
	require.Eventually(t, func() bool {
		_, err := c.Exec(ctx, "INSERT INTO fo VALUES (2)")
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "writes go on on the new primary")
	var n int
	var rec bool
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM fo").Scan(&n, &rec))
	require.False(t, rec, "reads go to the new primary: no standby is left")
	require.GreaterOrEqual(t, n, 2, "the read sees the write")
}

// TestBusyStandbyReadGoesToThePrimary: with every connection of the standby's pool held
// (pool_size 1, another client's read-only transaction open there), a plain read goes to
// the primary at once ("no standby connection to be had: the primary"). It waited for
// the standby's connection up to query_wait_timeout: here the 3 s the transaction lasted.
func TestBusyStandbyReadGoesToThePrimary(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=auto pool_size=1").ready(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	a := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
	b := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
	var tx pgx.Tx
	require.Eventually(t, func() bool { // a read-only transaction that reached the standby
		var err error
		tx, err = a.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		require.NoError(t, err)
		var standby bool
		require.NoError(t, tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby))
		if standby {
			return true
		}
		require.NoError(t, tx.Rollback(ctx))
		return false
	}, 10*time.Second, 10*time.Millisecond, "a read-only transaction on the standby")
	release := time.AfterFunc(3*time.Second, func() { _ = tx.Commit(context.Background()) })
	defer release.Stop()

	start := time.Now()
	var standby bool
	require.NoError(t, b.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby))
	took := time.Since(start)
	require.False(t, standby, "the read waited for the busy standby; %s", primaryReasons(t, p.reg))
	require.Less(t, took, time.Second, "the read waited %v for the busy standby", took)
}

// TestWriteAfterReadOnlyTransactionInOneQuery: a Query that runs a read-only transaction
// and then writes (`BEGIN READ ONLY; SELECT ...; COMMIT; INSERT ...`) runs on the
// primary, where the INSERT is outside that transaction; it went to the standby, where
// the INSERT failed with 25006.
func TestWriteAfterReadOnlyTransactionInOneQuery(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE w (x int); GRANT ALL ON w TO app")
	c := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeSimpleProtocol, opTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := c.Exec(ctx, "BEGIN READ ONLY; SELECT 1; COMMIT; INSERT INTO w VALUES (1)")
	require.NoError(t, err, "the write after the read-only transaction")
	var n int
	require.NoError(t, p.primary.Connect(t, pgtest.AppUser, pgtest.AppPassword, "app").QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n))
	require.Equal(t, 1, n)

	// A read-only transaction alone still reads from the standby.
	var standby bool
	require.Eventually(t, func() bool {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		require.NoError(t, tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby))
		return standby
	}, 10*time.Second, 20*time.Millisecond, "a read-only transaction reaches the standby; %s", primaryReasons(t, p.reg))
}
