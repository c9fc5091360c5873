package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// statementText is the k-th of the prepared workload's statement texts.
func statementText(k int) string { return "SELECT $1::int + " + strconv.Itoa(k) }

// runPrepared runs statements drawn at random from -statements texts, half of them through
// pgx's statement cache (which prepares each text once per connection and evicts the
// least recently used past 512) and half as named statements prepared, executed and
// deallocated each time, so the pooler's statement handling keeps churning. Every result
// is checked.
func runPrepared(r *runner) (outcome, error) {
	const mode = pgx.QueryExecModeCacheStatement
	conns, err := r.connectPgx(r.o.clients, mode)
	if err != nil {
		return outcome{}, err
	}
	var cached, named atomic.Int64
	ctx, cancel := r.phase()
	defer cancel()
	secs := r.drive(ctx, conns, mode, func(ctx context.Context, id int, c *pgx.Conn) error {
		k, v := rand.IntN(r.o.statements), rand.Int32N(1<<20)
		sql := statementText(k)
		var got int64
		if rand.IntN(2) == 0 {
			if err := c.QueryRow(ctx, sql, v).Scan(&got); err != nil {
				return err
			}
			cached.Add(1)
		} else {
			name := "pgload_" + strconv.Itoa(k)
			if _, err := c.Prepare(ctx, name, sql); err != nil {
				return err
			}
			err := c.QueryRow(ctx, name, v).Scan(&got)
			if err := errors.Join(err, c.Deallocate(ctx, name)); err != nil {
				return err
			}
			named.Add(1)
		}
		if want := int64(v) + int64(k); got != want {
			return wrongf("%s with $1 = %d returned %d, want %d", sql, v, got, want)
		}
		return nil
	})
	return outcome{seconds: secs, extra: []field{{"statements", r.o.statements},
		{"cached_tx", cached.Load()}, {"named_tx", named.Load()}}}, nil
}
