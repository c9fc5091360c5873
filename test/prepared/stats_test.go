package prepared

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestCacheCounters: pgx in its default mode cycles 5 statements through pgmux with
// max_prepared_statements=2, so statements are found prepared (right after pgx's own
// Parse), prepared again after being evicted, and evicted. SHOW PREPARED,
// SHOW PREPARED_SERVERS and /metrics report it, and the pool's counters survive the
// closing of its server connections.
func TestCacheCounters(t *testing.T) {
	m := startMux(t, setup{maxStmts: 2, extra: []string{
		"admin_users = " + pgtest.AppUser,
		"metrics_addr = 127.0.0.1:0",
	}})
	db := database(t, m.pg, "pstats")
	conn := m.connect(t, db, pgx.QueryExecModeCacheStatement) // pgx's default
	const stmts, rounds = 5, 6
	for r := range rounds {
		for i := range stmts {
			var v int
			q := fmt.Sprintf("SELECT $1::int + %d", i)
			require.NoError(t, conn.QueryRow(ctx(t), q, r).Scan(&v), q)
			require.Equal(t, r+i, v)
		}
	}

	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	pools := showRows(t, adm, "SHOW PREPARED")
	p := rowOf(t, pools, "database", db)
	require.Equal(t, pgtest.AppUser, p["user"])
	hits, misses, evictions := p["cache_hits"].(int64), p["cache_misses"].(int64), p["cache_evictions"].(int64)
	require.Positive(t, hits)
	require.Positive(t, misses)
	require.Positive(t, evictions)
	// Every use is either a hit or a miss: pgx's Parse and each Bind after it.
	require.GreaterOrEqual(t, hits+misses, int64(stmts*rounds))

	servers := showRows(t, adm, "SHOW PREPARED_SERVERS")
	t.Logf("SHOW PREPARED: %v; SHOW PREPARED_SERVERS: %v", p, servers)
	var sum struct{ prepared, hits, misses, evictions, n int64 }
	for _, s := range servers {
		if s["database"] != db {
			continue
		}
		sum.n++
		require.Positive(t, s["id"])
		require.Equal(t, pgtest.AppUser, s["user"])
		require.LessOrEqual(t, s["prepared_statements"], int64(2), "server %d", s["id"])
		sum.prepared += s["prepared_statements"].(int64)
		sum.hits += s["hits"].(int64)
		sum.misses += s["misses"].(int64)
		sum.evictions += s["evictions"].(int64)
	}
	require.Positive(t, sum.n)
	// No server has closed yet: the pool's figures are its servers' sums.
	require.Equal(t, p["prepared_statements"], sum.prepared)
	require.Positive(t, sum.prepared)
	require.Equal(t, hits, sum.hits)
	require.Equal(t, misses, sum.misses)
	require.Equal(t, evictions, sum.evictions)

	// The metrics show the same figures and pass promlint.
	body := scrape(t, m)
	fams, err := parseMetrics(body)
	require.NoError(t, err)
	series := func(name string) float64 {
		t.Helper()
		f, ok := fams[name]
		require.True(t, ok, "metric %s missing", name)
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["database"] == db && labels["user"] == pgtest.AppUser {
				if mt.GetGauge() != nil {
					return mt.GetGauge().GetValue()
				}
				return mt.GetCounter().GetValue()
			}
		}
		t.Fatalf("metric %s has no series for pool %s/%s", name, db, pgtest.AppUser)
		return 0
	}
	require.Equal(t, float64(sum.prepared), series("pgmux_prepared_statements"))
	require.Equal(t, float64(hits), series("pgmux_prepared_cache_hits_total"))
	require.Equal(t, float64(misses), series("pgmux_prepared_cache_misses_total"))
	require.Equal(t, float64(evictions), series("pgmux_prepared_cache_evictions_total"))
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)

	// Closing the pool's servers drops their statements but not their counters.
	_, err = adm.Exec(ctx(t), "RECONNECT "+db)
	require.NoError(t, err)
	_, err = adm.Exec(ctx(t), "WAIT_CLOSE "+db)
	require.NoError(t, err)
	p = rowOf(t, showRows(t, adm, "SHOW PREPARED"), "database", db)
	require.Equal(t, int64(0), p["prepared_statements"])
	require.Equal(t, hits, p["cache_hits"])
	require.Equal(t, misses, p["cache_misses"])
	require.Equal(t, evictions, p["cache_evictions"])
	for _, s := range showRows(t, adm, "SHOW PREPARED_SERVERS") {
		require.NotEqual(t, db, s["database"], "closed server still listed: %v", s)
	}

	// A new server starts its own counters, added to the pool's.
	var v int
	require.NoError(t, conn.QueryRow(ctx(t), "SELECT $1::int + 0", 1).Scan(&v))
	p = rowOf(t, showRows(t, adm, "SHOW PREPARED"), "database", db)
	require.Equal(t, int64(1), p["prepared_statements"])
	require.Greater(t, p["cache_misses"], misses)
	require.GreaterOrEqual(t, p["cache_hits"], hits)
	fams, err = parseMetrics(scrape(t, m))
	require.NoError(t, err)
	require.Equal(t, float64(1), series("pgmux_prepared_statements"))
	require.Greater(t, series("pgmux_prepared_cache_misses_total"), float64(misses))
}

// showRows runs a SHOW on the admin console: one map per row, column name to value,
// numeric columns as int64, text as string, NULL as nil.
func showRows(t *testing.T, adm *pgx.Conn, cmd string) []map[string]any {
	t.Helper()
	rows, err := adm.Query(ctx(t), cmd)
	require.NoError(t, err)
	defer rows.Close()
	fds := rows.FieldDescriptions()
	var out []map[string]any
	for rows.Next() {
		raw := rows.RawValues()
		row := make(map[string]any, len(fds))
		for i, fd := range fds {
			switch {
			case raw[i] == nil:
				row[fd.Name] = nil
			case fd.DataTypeOID == 20 || fd.DataTypeOID == 23:
				n, err := strconv.ParseInt(string(raw[i]), 10, 64)
				require.NoError(t, err, "%s: column %s", cmd, fd.Name)
				row[fd.Name] = n
			default:
				row[fd.Name] = string(raw[i])
			}
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	for _, fd := range fds {
		if fd.Name != "database" && fd.Name != "user" {
			require.Contains(t, []uint32{20, 23}, fd.DataTypeOID, "%s: column %s should be numeric", cmd, fd.Name)
		}
	}
	return out
}

// rowOf returns the row whose column key is value.
func rowOf(t *testing.T, rows []map[string]any, key string, value any) map[string]any {
	t.Helper()
	for _, r := range rows {
		if r[key] == value {
			return r
		}
	}
	t.Fatalf("no row with %s = %v in %v", key, value, rows)
	return nil
}

func parseMetrics(body string) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(strings.NewReader(body))
}

// scrape fetches pgmux's /metrics.
func scrape(t *testing.T, m *mux) string {
	t.Helper()
	addr := m.Srv.MetricsAddr()
	require.NotNil(t, addr, "metrics_addr is not listening")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr.String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// TestServerParseCount: SHOW STATS counts the Parses that reach servers apart from the
// client's. Five pgx clients, one after another over a pool of one server, prepare the
// same statement: five client Parses, one server Parse (the others find it prepared).
// Then with max_prepared_statements=1 one client alternates two statements: each use
// after the first prepares a statement the cache evicted, Parses the client never sent.
func TestServerParseCount(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 1, extra: []string{"admin_users = " + pgtest.AppUser}})
	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	counts := func(db string) (client, server int64) {
		for _, cmd := range []string{"SHOW STATS", "SHOW STATS_TOTALS"} {
			row := rowOf(t, showRows(t, adm, cmd), "database", db)
			prefix := "total_"
			if cmd == "SHOW STATS_TOTALS" {
				prefix = ""
			}
			c, s := row[prefix+"client_parse_count"].(int64), row[prefix+"server_parse_count"].(int64)
			if cmd == "SHOW STATS" {
				client, server = c, s
			} else {
				require.Equal(t, []int64{client, server}, []int64{c, s}, "SHOW STATS_TOTALS agrees with SHOW STATS")
			}
		}
		return client, server
	}

	shared := database(t, m.pg, "sparse")
	for i := range 5 {
		conn := m.connect(t, shared, pgx.QueryExecModeCacheStatement)
		var v int
		require.NoError(t, conn.QueryRow(ctx(t), "SELECT $1::int + 100", i).Scan(&v))
		require.Equal(t, i+100, v)
		closeConn(conn)
	}
	client, server := counts(shared)
	require.Equal(t, int64(5), client)
	require.Equal(t, int64(1), server, "the statement is prepared on the one server once")

	evicting := database(t, m.pg, "sparse")
	conn := m.connect(t, evicting, pgx.QueryExecModeCacheStatement)
	const rounds = 4
	for r := range rounds {
		for _, q := range []string{"SELECT $1::int + 1", "SELECT $1::int + 2"} {
			var v int
			require.NoError(t, conn.QueryRow(ctx(t), q, r).Scan(&v), q)
		}
	}
	client, server = counts(evicting)
	require.Equal(t, int64(2), client, "pgx prepares each statement once")
	require.Equal(t, int64(2*rounds), server, "every use prepares the statement the other evicted")
}
