package prepared

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestPgbenchPrepared runs pgbench -M prepared (Parse once per connection, then
// Bind/Execute/Sync; the same names P_0, P_1... on every connection) through transaction
// pooling over 20 server connections, with 50 and 1000 clients, select-only and
// tpcb-like. Every transaction must succeed.
func TestPgbenchPrepared(t *testing.T) {
	pg := pgtest.Start(t)
	pgbench := pg.RequireBin(t, "pgbench")
	db := database(t, pg, "bench")
	direct := append(m0env(pg, db), "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port))
	out, err := muxtest.RunCmd(t, 2*time.Minute, direct, pgbench, "-i", "-q", "-s", "1")
	require.NoError(t, err, out)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			// tpcb-like with scale 1 serializes every transaction on pgbench's one branch
			// row, so 1000 clients queue for the whole run: a client waits about half of it
			// on average and the last ones nearly all of it (measured with 4 busy loops on
			// the 2 cores: 88 tps, 22.7 s for 2000 transactions, latency average 11.3 s).
			// Under a load of 15-30 the run takes over a minute, and 60 s (the harness's
			// query_wait_timeout) cut the last clients off: the wait is long by design.
			m := startMux(t, setup{poolSize: 20, mode: mode, maxClient: 2000,
				extra: []string{"query_wait_timeout = 150"}})
			cases := []struct {
				name    string
				clients int
				txs     int
				script  []string
			}{
				{"select-only c50", 50, 100, []string{"-S"}},
				{"tpcb-like c50", 50, 20, nil},
				{"select-only c1000", 1000, 3, []string{"-S"}},
				{"tpcb-like c1000", 1000, 2, nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					args := append([]string{"-n", "-M", "prepared", "-c", strconv.Itoa(tc.clients), "-j", "2",
						"-t", strconv.Itoa(tc.txs)}, tc.script...)
					out, err := muxtest.RunCmd(t, 3*time.Minute, m.env(db), pgbench, args...)
					require.NoError(t, err, out)
					want := strconv.Itoa(tc.clients * tc.txs)
					require.Regexp(t, `number of transactions actually processed: `+want+`/`+want, out)
					failed := regexp.MustCompile(`number of failed transactions: (\d+)`).FindStringSubmatch(out)
					if failed != nil {
						require.Equal(t, "0", failed[1], out)
					}
				})
			}
		})
	}
}

// m0env is the environment for libpq programs with PG* variables cleared, as app on db.
func m0env(pg *pgtest.Server, db string) []string {
	env := muxtest.LibpqEnv(pg.Host, pg.Port, pgtest.AppUser, pgtest.AppPassword, db)
	out := env[:0]
	for _, kv := range env {
		if len(kv) > 7 && (kv[:7] == "PGHOST=" || kv[:7] == "PGPORT=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
