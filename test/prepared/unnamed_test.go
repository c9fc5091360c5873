package prepared

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// cacheUnnamed is the setup line that turns the unnamed-statement cache on.
const cacheUnnamed = "cache_unnamed_statements = 1\nadmin_users = " + pgtest.AppUser

// rawDirect is a raw client connected to PostgreSQL itself.
func rawDirect(t testing.TB, pg *pgtest.Server, db string) *raw {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pc, err := pgconn.Connect(c, pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	require.NoError(t, err)
	hc, err := pc.Hijack()
	require.NoError(t, err)
	t.Cleanup(func() { _ = hc.Conn.Close() })
	return &raw{t: t, hc: hc, fe: hc.Frontend}
}

// exchange sends msgs and returns every answer up to the ReadyForQuery of each Sync, in
// a comparable form: one line per message.
func (r *raw) exchange(msgs ...pgproto3.FrontendMessage) []string {
	r.t.Helper()
	r.send(msgs...)
	syncs := 0
	for _, m := range msgs {
		if _, ok := m.(*pgproto3.Sync); ok {
			syncs++
		}
	}
	var out []string
	for syncs > 0 {
		m := r.recv()
		out = append(out, describeMsg(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			syncs--
		}
	}
	return out
}

// describeMsg renders a message with every field a client could see.
func describeMsg(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		return fmt.Sprintf("E %s %s %s %q pos=%d %q %q", m.Severity, m.Code, m.Message, m.Detail, m.Position, m.Hint, m.Routine)
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "D " + strings.Join(vals, "|")
	}
	return fmt.Sprintf("%c %+v", kindOf(m), m)
}

// TestUnnamedCacheSameAnswers sends the same unnamed-statement conversations directly
// and through pgmux with cache_unnamed_statements on, over one server connection, four
// times each (a first sighting goes as it is, the second prepares the statement under
// pgmux's name, later ones are served from the cache), and requires identical answers.
func TestUnnamedCacheSameAnswers(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, extra: []string{cacheUnnamed}})
	db := database(t, m.pg, "unn",
		"CREATE TABLE t (id int PRIMARY KEY, v text)",
		"INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g")
	direct := rawDirect(t, m.pg, db)
	via := m.raw(t, db)
	convs := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"int4 parameter", []pgproto3.FrontendMessage{parse("", "SELECT $1 + 1 AS x", 23),
			bind("", "", "41"), describePortal(""), execute("", 0), syncMsg}},
		{"int8 parameter, same text", []pgproto3.FrontendMessage{parse("", "SELECT $1 + 1 AS x", 20),
			bind("", "", "9000000000"), describePortal(""), execute("", 0), syncMsg}},
		{"unspecified parameter types", []pgproto3.FrontendMessage{parse("", "SELECT v FROM t WHERE id = $1"),
			describeStmt(""), bind("", "", "3"), execute("", 0), syncMsg}},
		{"describe, then bind in the next request", []pgproto3.FrontendMessage{
			parse("", "SELECT id, v FROM t WHERE id > $1 ORDER BY id"), describeStmt(""), syncMsg,
			bind("", "", "7"), execute("", 0), syncMsg}},
		{"parse error", []pgproto3.FrontendMessage{parse("", "SELEC v FROM t WHERE id = $1"),
			bind("", "", "1"), execute("", 0), syncMsg}},
		{"analysis error", []pgproto3.FrontendMessage{parse("", "SELECT nosuch FROM t WHERE id = $1"),
			bind("", "", "1"), execute("", 0), syncMsg}},
		{"error inside a pipeline", []pgproto3.FrontendMessage{
			parse("", "SELECT v FROM t WHERE id = $1"), bind("", "", "1"), execute("", 0),
			parse("", "SELECT 1/$1::int"), bind("", "", "0"), execute("", 0),
			parse("", "SELECT v FROM t WHERE id = $1"), bind("", "", "2"), execute("", 0), syncMsg,
			parse("", "SELECT v FROM t WHERE id = $1"), bind("", "", "4"), execute("", 0), syncMsg}},
		{"rows in portions", []pgproto3.FrontendMessage{parse("", "SELECT id FROM t ORDER BY id"),
			bind("", ""), execute("", 4), execute("", 4), syncMsg}},
		{"flush", []pgproto3.FrontendMessage{parse("", "SELECT 2 AS two"), flushMsg}},
		{"error, flush, then a parse before the sync", nil},
		{"parse behind a slow execute", nil},
		{"failed transaction", []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"},
			parse("", "SELECT 1/$1::int"), bind("", "", "0"), execute("", 0), syncMsg,
			parse("", "SELECT v FROM t WHERE id = $1"), bind("", "", "1"), execute("", 0), syncMsg,
			&pgproto3.Query{String: "ROLLBACK"}}},
		{"DISCARD ALL between uses", []pgproto3.FrontendMessage{&pgproto3.Query{String: "DISCARD ALL"},
			parse("", "SELECT v FROM t WHERE id = $1"), bind("", "", "5"), execute("", 0), syncMsg}},
		{"COPY", []pgproto3.FrontendMessage{parse("", "COPY (SELECT id FROM t WHERE id < 3 ORDER BY id) TO STDOUT"),
			bind("", ""), execute("", 0), syncMsg}},
	}
	for _, cv := range convs {
		t.Run(cv.name, func(t *testing.T) {
			for i := range 4 {
				var want, got []string
				switch cv.name {
				case "error, flush, then a parse before the sync":
					// The server ignores everything after the error up to the Sync: the
					// Parse of a cached text gets no ParseComplete either.
					first := []pgproto3.FrontendMessage{parse("", "SELECT 1/$1::int"), bind("", "", "0"), execute("", 0), flushMsg}
					direct.send(first...)
					via.send(first...)
					// ParseComplete, then the error (at the Bind: planning folds 1/0).
					want = []string{describeMsg(direct.recv()), describeMsg(direct.recv())}
					got = []string{describeMsg(via.recv()), describeMsg(via.recv())}
					rest := []pgproto3.FrontendMessage{parse("", "SELECT 2 AS two"), bind("", ""), execute("", 0), syncMsg}
					want = append(want, direct.exchange(rest...)...)
					got = append(got, via.exchange(rest...)...)
					require.Equal(t, want, got, "round %d", i)
					continue
				case "parse behind a slow execute":
					// A cached Parse sent while an earlier part of the request is still
					// running: its ParseComplete comes after that part's answers.
					first := []pgproto3.FrontendMessage{parse("", "SELECT pg_sleep(0.1)"), bind("", ""), execute("", 0), flushMsg}
					rest := []pgproto3.FrontendMessage{parse("", "SELECT 2 AS two"), bind("", ""), execute("", 0), syncMsg}
					direct.send(first...)
					want = direct.exchange(rest...)
					via.send(first...)
					time.Sleep(20 * time.Millisecond)
					got = via.exchange(rest...)
					require.Equal(t, want, got, "round %d", i)
					continue
				}
				if cv.name == "flush" {
					// Parse and Flush: the ParseComplete must come without a Sync.
					direct.send(cv.msgs...)
					via.send(cv.msgs...)
					want = []string{describeMsg(direct.recv())}
					got = []string{describeMsg(via.recv())}
					want = append(want, direct.exchange(syncMsg)...)
					got = append(got, via.exchange(syncMsg)...)
				} else {
					want = direct.exchange(cv.msgs...)
					got = via.exchange(cv.msgs...)
				}
				require.Equal(t, want, got, "round %d", i)
			}
		})
	}
	hits, misses := unnamedCounters(t, m)
	require.Positive(t, hits)
	require.Positive(t, misses)
}

// unnamedCounters sums SHOW PREPARED's unnamed_hits and unnamed_misses.
func unnamedCounters(t *testing.T, m *mux) (hits, misses int64) {
	t.Helper()
	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	for _, r := range showRows(t, adm, "SHOW PREPARED") {
		hits += r["unnamed_hits"].(int64)
		misses += r["unnamed_misses"].(int64)
	}
	return hits, misses
}

// TestUnnamedCacheAlterTable changes a table's columns between executions of a cached
// unnamed statement (pgbench -M extended's shape: Parse, Bind, Describe portal, Execute,
// Sync): every answer is what PostgreSQL gives directly.
func TestUnnamedCacheAlterTable(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, extra: []string{cacheUnnamed}})
	db := database(t, m.pg, "unalt",
		"CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'one')")
	direct := rawDirect(t, m.pg, db)
	via := m.raw(t, db)
	req := []pgproto3.FrontendMessage{parse("", "SELECT * FROM t WHERE id = $1"),
		bind("", "", "1"), describePortal(""), execute("", 0), syncMsg}
	same := func(round string) {
		t.Helper()
		require.Equal(t, direct.exchange(req...), via.exchange(req...), round)
	}
	for i := range 3 {
		same("before " + strconv.Itoa(i))
	}
	m.pg.ExecDB(t, db, "ALTER TABLE t ADD COLUMN w int DEFAULT 7")
	for i := range 3 {
		same("after ADD COLUMN " + strconv.Itoa(i))
	}
	m.pg.ExecDB(t, db, "ALTER TABLE t DROP COLUMN v")
	for i := range 3 {
		same("after DROP COLUMN " + strconv.Itoa(i))
	}
	// Describe of the statement before binding, after another change.
	m.pg.ExecDB(t, db, "ALTER TABLE t ADD COLUMN z text DEFAULT 'z'")
	req = []pgproto3.FrontendMessage{parse("", "SELECT * FROM t WHERE id = $1"), describeStmt(""),
		bind("", "", "1"), execute("", 0), syncMsg}
	for i := range 3 {
		same("describe statement " + strconv.Itoa(i))
	}
}

// TestUnnamedCacheUniqueTexts runs 1000 distinct texts (literals inlined), some twice,
// and one hot statement, from 50 pgx clients in exec mode (unnamed statements) over 5
// servers with max_prepared_statements 20, the servers replaced every second or so
// (server_lifetime 1): no errors, right answers, and no server ever holds more than 20
// statements.
func TestUnnamedCacheUniqueTexts(t *testing.T) {
	m := startMux(t, setup{poolSize: 5, maxStmts: 20, extra: []string{cacheUnnamed, "server_lifetime = 1"}})
	db := database(t, m.pg, "ununiq")
	const clients, perClient = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	stop := make(chan struct{})
	maxSeen := make(chan int64, 1)
	go func() { // watch every server's cache size while the load runs
		adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
		var most int64
		defer func() { maxSeen <- most }()
		for {
			for _, r := range showRows(t, adm, "SHOW PREPARED_SERVERS") {
				most = max(most, r["prepared_statements"].(int64))
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := m.tryConnect(db, pgx.QueryExecModeExec)
			if err != nil {
				errs <- err
				return
			}
			defer closeConn(conn)
			for i := range perClient {
				n := c*perClient + i
				for range 1 + n%2 { // every other text twice: promoted on its second sighting
					var got int
					q := fmt.Sprintf("SELECT %d + $1::int", n)
					if err := conn.QueryRow(context.Background(), q, 1).Scan(&got); err != nil || got != n+1 {
						errs <- fmt.Errorf("%s: %d, %v", q, got, err)
						return
					}
					var hot string
					if err := conn.QueryRow(context.Background(), "SELECT $1::text || 'hot'", "x").Scan(&hot); err != nil || hot != "xhot" {
						errs <- fmt.Errorf("hot: %q, %v", hot, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	most := <-maxSeen
	require.LessOrEqual(t, most, int64(20), "a server held more statements than max_prepared_statements")
	require.Positive(t, most)
	hits, _ := unnamedCounters(t, m)
	require.Greater(t, hits, int64(clients*perClient), "the hot statement is served from the cache")
}

// TestUnnamedCacheNodePostgres runs node-postgres's unnamed queries from 100 clients over
// 5 servers with the unnamed-statement cache on; each client checks it sees exactly its
// own rows, and most Parses are served from the cache.
func TestUnnamedCacheNodePostgres(t *testing.T) {
	prog := interpreter(t, "node")
	env := append(os.Environ(), "NODE_PATH="+strings.Join([]string{os.Getenv("NODE_PATH"), "/usr/share/nodejs",
		"/usr/lib/nodejs", "/usr/lib/node_modules", "/usr/local/lib/node_modules"}, ":"))
	if out, err := muxtest.RunCmd(t, 30*time.Second, env, prog, "-e", "require('pg')"); err != nil {
		skipOrFail(t, "node-postgres is not installed: "+strings.TrimSpace(out))
	}
	m := startMux(t, setup{poolSize: 5, extra: []string{cacheUnnamed}})
	db := database(t, m.pg, "unnode", "CREATE TABLE rows_of (owner int, n int, label text, PRIMARY KEY (owner, n))")
	script, err := filepath.Abs(filepath.Join("testdata", "node_unnamed.js"))
	require.NoError(t, err)
	dsn := "postgres://" + pgtest.AppUser + ":" + pgtest.AppPassword + "@127.0.0.1:" +
		strconv.Itoa(m.Port) + "/" + db + "?sslmode=disable"
	const clients, rounds = 100, 10
	out, err := muxtest.RunCmd(t, 3*time.Minute, env, prog, script, dsn, strconv.Itoa(clients), strconv.Itoa(rounds))
	require.NoError(t, err, out)
	last := regexp.MustCompile(`(?m)^ok (\d+)\s*\z`).FindStringSubmatch(out)
	require.NotNil(t, last, "no final \"ok N\" line:\n%s", out)
	require.Equal(t, strconv.Itoa(clients*rounds*3), last[1], out)
	hits, misses := unnamedCounters(t, m)
	t.Logf("unnamed hits %d, misses %d", hits, misses)
	require.Greater(t, hits, 4*misses, "most Parses come from the cache")
}

// TestUnnamedCachePgbenchTPCB runs pgbench's tpcb-like script with -M extended (every
// statement a Parse of the unnamed statement) through pgmux over 5 servers, on a database
// with cache_unnamed_statements on and on one where a [databases] entry turns it off:
// zero failed transactions on both, and on both the balances agree (accounts = tellers =
// branches = history).
func TestUnnamedCachePgbenchTPCB(t *testing.T) {
	pg := pgtest.Start(t)
	pgbench := pg.RequireBin(t, "pgbench")
	dbOn, dbOff := database(t, pg, "tpcbon"), database(t, pg, "tpcboff")
	direct := func(db string) []string {
		return append(m0env(pg, db), "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port))
	}
	for _, db := range []string{dbOn, dbOff} {
		out, err := muxtest.RunCmd(t, 2*time.Minute, direct(db), pgbench, "-i", "-q", "-s", "1")
		require.NoError(t, err, out)
	}
	s := setup{poolSize: 5, extra: []string{cacheUnnamed,
		fmt.Sprintf("[databases]\n%s = host=%s port=%d cache_unnamed_statements=0", dbOff, pg.Host, pg.Port)}}
	ini := muxtest.WriteConfig(t, t.TempDir(), s.ini(pg),
		muxtest.Userlist(map[string]string{pgtest.AppUser: pgtest.AppPassword}))
	m := &mux{Mux: muxtest.Start(t, pg, muxtest.Options{IniPath: ini, Logger: muxtest.TestLogger(t)}), pg: pg}
	const clients, txs = 50, 40
	for _, db := range []string{dbOn, dbOff} {
		out, err := muxtest.RunCmd(t, 3*time.Minute, m.env(db), pgbench, "-n", "-M", "extended",
			"-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(txs))
		require.NoError(t, err, out)
		want := strconv.Itoa(clients * txs)
		require.Regexp(t, `number of transactions actually processed: `+want+`/`+want, out)
		if failed := regexp.MustCompile(`number of failed transactions: (\d+)`).FindStringSubmatch(out); failed != nil {
			require.Equal(t, "0", failed[1], out)
		}
		conn := pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		var acc, tel, br, hist, n int64
		require.NoError(t, conn.QueryRow(ctx(t), `SELECT (SELECT sum(abalance) FROM pgbench_accounts),
			(SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches),
			(SELECT sum(delta) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`).Scan(&acc, &tel, &br, &hist, &n))
		closeConn(conn)
		require.Equal(t, int64(clients*txs), n, db)
		require.Equal(t, []int64{hist, hist, hist}, []int64{acc, tel, br}, db)
	}
	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	rows := showRows(t, adm, "SHOW PREPARED")
	on, off := rowOf(t, rows, "database", dbOn), rowOf(t, rows, "database", dbOff)
	t.Logf("on: %v; off: %v", on, off)
	require.Greater(t, on["unnamed_hits"].(int64), int64(clients*txs), "the setting is on for %s", dbOn)
	require.Equal(t, int64(0), off["unnamed_hits"].(int64), "a [databases] entry turns it off for %s", dbOff)
}
