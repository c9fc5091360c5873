package prepared

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// ddlRun is one run of the DDL sequence: against PostgreSQL directly or through pgmux.
type ddlRun struct {
	t       *testing.T
	url     string
	clients []*pgx.Conn
	holders []*pgx.Conn    // through pgmux: keep servers busy so uses move between servers
	errs    map[string]int // error (by round, phase, client, query) -> how many uses got it
}

var digits = regexp.MustCompile(`[0-9]+`)

// use runs sql for client k with h servers held by other clients, recording any error
// (numbers in the message blanked: type OIDs differ between databases).
func (r *ddlRun) use(label string, conn *pgx.Conn, h int, tx bool, sql string, args ...any) {
	t := r.t
	c := ctx(t)
	for _, hc := range r.holders[:min(h, len(r.holders))] {
		_, err := hc.Exec(c, "BEGIN")
		require.NoError(t, err)
		_, err = hc.Exec(c, "SELECT 1")
		require.NoError(t, err)
	}
	err := func() error {
		q := pgx.Tx(nil)
		if tx {
			var err error
			if q, err = conn.Begin(c); err != nil {
				return err
			}
			defer func() { _ = q.Rollback(c) }()
		}
		var rows pgx.Rows
		var err error
		if q != nil {
			rows, err = q.Query(c, sql, args...)
		} else {
			rows, err = conn.Query(c, sql, args...)
		}
		if err != nil {
			return err
		}
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if q != nil {
			return q.Commit(c)
		}
		return nil
	}()
	for _, hc := range r.holders[:min(h, len(r.holders))] {
		_, herr := hc.Exec(c, "ROLLBACK")
		require.NoError(t, herr)
	}
	if err == nil {
		return
	}
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%s: %v", label, err)
	r.errs[fmt.Sprintf("%s: %s %s", label, pe.Code, digits.ReplaceAllString(pe.Message, "N"))]++
}

// exec runs DDL on conn; it must succeed.
func (r *ddlRun) exec(conn *pgx.Conn, sql string) {
	_, err := conn.Exec(ctx(r.t), sql)
	require.NoError(r.t, err, sql)
}

func (r *ddlRun) connect() *pgx.Conn {
	return connectURL(r.t, r.url)
}

func connectURL(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(c, cfg) // QueryExecModeCacheStatement, pgx's default
	require.NoError(t, err)
	t.Cleanup(func() { closeConn(conn) })
	return conn
}

// sequence is the DDL scenario from pgx's test suite, spread over clients and servers:
// every client caches its statements on every server, then a client drops and creates
// a type again under the same name or alters the table, and every client, old and newly
// connected, uses the statements again, in and out of transactions.
func (r *ddlRun) sequence(rounds int) {
	const (
		selStar = "SELECT * FROM t WHERE id = $1"
		selType = "SELECT $1::mood::text AS m, (SELECT count(*) FROM t) AS n"
	)
	useAll := func(round int, phase string) {
		clients := append([]*pgx.Conn(nil), r.clients...)
		fresh := r.connect() // connected after the DDL: PostgreSQL prepares anew for it
		clients = append(clients, fresh)
		for k, conn := range clients {
			for h := range 3 { // servers held: through pgmux, each use may go to another
				label := fmt.Sprintf("round %d %s client %d", round, phase, k)
				r.use(label+" select*", conn, h, false, selStar, 1)
				r.use(label+" type", conn, h, false, selType, "happy")
				r.use(label+" select* in tx", conn, h, true, selStar, 2)
				r.use(label+" type in tx", conn, h, true, selType, "sad")
			}
		}
	}
	for round := range rounds {
		useAll(round, "before")
		ddl := r.clients[round%len(r.clients)]
		if round%2 == 0 {
			r.exec(ddl, fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d int DEFAULT %d", round, round))
		} else {
			r.exec(ddl, "DROP TYPE mood; CREATE TYPE mood AS ENUM ('happy', 'sad')")
		}
		useAll(round, "after")
	}
}

// TestDDLBetweenUsesAsDirect runs the same DDL sequence from pgx clients in cache mode
// against PostgreSQL directly and through pgmux (3 servers) and requires that pgmux gives
// no error a direct connection does not: no "cache lookup failed for type" and no
// "cached plan must not change result type" from a statement prepared before the client
// asked for it. Errors are compared per round, phase, client and query: a client whose
// statement is stale in PostgreSQL fails at its first use there, while through pgmux its
// first uses may go to servers that prepare it anew and succeed, and the error comes at a
// later use (the same error, once, as drivers then prepare again).
func TestDDLBetweenUsesAsDirect(t *testing.T) {
	m := startMux(t, setup{poolSize: 3})
	schema := []string{
		"CREATE TABLE t (id int PRIMARY KEY, v text)",
		"INSERT INTO t VALUES (1, 'a'), (2, 'b')",
		"CREATE TYPE mood AS ENUM ('happy', 'sad')",
	}
	const clients, rounds = 3, 4
	run := func(url string, holders int) map[string]int {
		r := &ddlRun{t: t, url: url, errs: map[string]int{}}
		for range clients {
			r.clients = append(r.clients, r.connect())
		}
		for range holders {
			r.holders = append(r.holders, r.connect())
		}
		r.sequence(rounds)
		return r.errs
	}
	directDB := database(t, m.pg, "ddldirect", schema...)
	direct := run(m.pg.URL(pgtest.AppUser, pgtest.AppPassword, directDB), 0)
	pooledDB := database(t, m.pg, "ddlpooled", schema...)
	pooled := run(m.url(pooledDB), 2)

	var extra, fewer []string
	for e, n := range pooled {
		if n > direct[e] {
			extra = append(extra, fmt.Sprintf("%s (%d times, directly %d)", e, n, direct[e]))
		}
	}
	for e, n := range direct {
		if pooled[e] < n {
			fewer = append(fewer, fmt.Sprintf("%s (%d times, through pgmux %d)", e, n, pooled[e]))
		}
	}
	sort.Strings(extra)
	sort.Strings(fewer)
	sum := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	t.Logf("errors directly: %d, through pgmux: %d", sum(direct), sum(pooled))
	for _, e := range fewer {
		t.Logf("fewer through pgmux: %s", e)
	}
	require.NotEmpty(t, direct, "the sequence should make PostgreSQL itself report stale statements")
	require.Empty(t, extra, "errors through pgmux that a direct connection does not give")
}
