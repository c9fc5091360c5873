package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

var (
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)
	failedRe    = regexp.MustCompile(`number of failed transactions: (\d+)`)
)

// TestPgbench runs pgbench through pgmux: 1000 clients over a pool of 20 in transaction
// mode (PostgreSQL allows 300 connections, so they must be multiplexed), and 50 clients
// in both modes, with the simple and extended protocols.
func TestPgbench(t *testing.T) {
	pg := pgtest.Start(t)
	pgbench := pg.RequireBin(t, "pgbench")
	const poolSize = 20

	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			db := pg.NewDatabase(t, "pgbench_"+mode)
			m := startMux(t, pg, bouncer{PoolMode: mode, PoolSize: poolSize, MaxClientConn: 2000})
			env := m.Env(pgtest.AppUser, pgtest.AppPassword, db)

			out, err := muxtest.RunCmd(t, 2*time.Minute, env, pgbench, "-i", "-s", "2", "-q")
			require.NoError(t, err, "pgbench -i:\n%s", out)

			type run struct {
				clients, txns int
				script        []string // pgbench's built-in script flags
				protocol      string
			}
			var runs []run
			for _, proto := range []string{"simple", "extended"} {
				runs = append(runs, run{50, 20, []string{"-S"}, proto}, run{50, 20, nil, proto})
				if mode == "transaction" {
					runs = append(runs, run{1000, 10, []string{"-S"}, proto}, run{1000, 5, nil, proto})
				}
			}
			admin := pg.Connect(t, pgtest.SuperUser, "", db)
			for _, r := range runs {
				name := fmt.Sprintf("c%d/%s/%s", r.clients, map[bool]string{true: "select-only", false: "tpcb-like"}[len(r.script) > 0], r.protocol)
				t.Run(name, func(t *testing.T) {
					args := append([]string{"-n", "-c", strconv.Itoa(r.clients), "-j", "2",
						"-t", strconv.Itoa(r.txns), "-M", r.protocol}, r.script...)
					ctx, cancel := context.WithCancel(context.Background())
					peak := watchServerConns(ctx, admin, db, pgtest.AppUser)
					out, err := muxtest.RunCmd(t, 2*time.Minute, env, pgbench, args...)
					cancel()
					w := <-peak
					require.NoError(t, w.err)
					max := w.max
					require.NoError(t, err, "pgbench %v:\n%s", args, out)
					want := r.clients * r.txns
					got := processedRe.FindStringSubmatch(out)
					require.NotNil(t, got, "no processed count in:\n%s", out)
					require.Equal(t, strconv.Itoa(want)+"/"+strconv.Itoa(want), got[1]+"/"+got[2], out)
					failed := failedRe.FindStringSubmatch(out)
					require.NotNil(t, failed, "no failed count in:\n%s", out)
					require.Equal(t, "0", failed[1], out)
					require.LessOrEqual(t, max, poolSize, "server connections of %s/%s at once", db, pgtest.AppUser)
					require.Positive(t, max, "the watcher saw no server connection at all")
					require.LessOrEqual(t, len(w.pids), poolSize, "server connections of %s/%s opened over the run", db, pgtest.AppUser)
				})
			}
		})
	}
}
