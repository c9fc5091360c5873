package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// idleConn is one held client. busy is set while a query runs on it.
type idleConn struct {
	pc   *pgconn.PgConn
	busy atomic.Bool
}

// maxPingsInFlight bounds the SELECT 1 queries the idle workload has under way at once.
const maxPingsInFlight = 64

// runIdle opens -clients low-level connections, holds them for -duration while running
// SELECT 1 on random ones at -rate per second, then runs SELECT 1 on every one of them
// (unless stopped by a signal) and closes them.
func runIdle(r *runner) (outcome, error) {
	conns := connectAll(r, r.o.clients, func(int) (*idleConn, error) {
		cfg := r.cfg.Config.Copy()
		ctx, cancel := context.WithTimeout(r.hard, r.o.connectTimeout)
		defer cancel()
		pc, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &idleConn{pc: pc}, nil
	})
	defer closeConns(r, conns, func(c *idleConn) *pgconn.PgConn { return c.pc })
	if len(conns) == 0 {
		if r.stop.Err() != nil {
			return outcome{}, nil
		}
		return outcome{}, fmt.Errorf("no client could connect")
	}

	ctx, cancel := r.phase()
	defer cancel()
	r.logf("holding %d clients for %s, %g SELECT 1/s", len(conns), r.o.duration, r.o.rate)
	start := time.Now()
	var wg sync.WaitGroup
	if r.o.rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / r.o.rate))
		sem := make(chan struct{}, maxPingsInFlight)
	pings:
		for {
			select {
			case <-ctx.Done():
				break pings
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // as many under way as allowed: skip this tick
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				for range 8 { // a few tries to find a client no other ping holds
					c := conns[rand.IntN(len(conns))]
					if c.busy.CompareAndSwap(false, true) {
						ping(r, int(rand.Uint32()), c, true)
						c.busy.Store(false)
						return
					}
				}
			}()
		}
		tick.Stop()
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	pings := r.stats.tx.Load()

	usable, checked := int64(0), false
	if r.stop.Err() == nil {
		r.logf("checking that all %d clients still answer", len(conns))
		usable, checked = checkAll(r, conns), true
	}
	out := outcome{seconds: secs, extra: []field{
		{"held", len(conns)}, {"pings", pings}}}
	if checked {
		out.extra = append(out.extra, field{"usable_after_hold", usable})
		if usable != int64(len(conns)) {
			out.failures = append(out.failures,
				fmt.Sprintf("%d of %d held clients did not answer SELECT 1 after the hold", int64(len(conns))-usable, len(conns)))
		}
	}
	return out, nil
}

// ping runs SELECT 1 on c and checks the answer. With count it is a transaction of the
// run (latency recorded); otherwise only failures are counted. It reports success.
func ping(r *runner, id int, c *idleConn, count bool) bool {
	ctx, cancel := r.op()
	defer cancel()
	t0 := time.Now()
	res, err := c.pc.Exec(ctx, "SELECT 1").ReadAll()
	took := time.Since(t0)
	if err != nil {
		r.stats.Error("", err)
		return false
	}
	if count {
		r.stats.Done(id, took)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "1" {
		r.stats.Wrong(fmt.Sprintf("SELECT 1 on an idle client returned %v", res))
		return false
	}
	return true
}

// checkAll runs SELECT 1 on every client, -connect-concurrency at a time, and returns how
// many answered right.
func checkAll(r *runner, conns []*idleConn) int64 {
	var ok atomic.Int64
	parallel(len(conns), r.o.connectConcurrency, func() bool { return r.hard.Err() != nil }, func(i int) {
		if ping(r, i, conns[i], false) {
			ok.Add(1)
		}
	})
	return ok.Load()
}
