package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// workloads are the -workload values. Each connects its clients, runs the measured phase
// and returns what it found beyond the common Stats; an error means the run could not be
// set up at all.
var workloads = map[string]func(*runner) (outcome, error){
	"select":   runSelect,
	"idle":     runIdle,
	"listen":   runListen,
	"prepared": runPrepared,
	"sticky":   runSticky,
}

// outcome is what a workload reports besides its Stats.
type outcome struct {
	seconds  float64  // length of the measured phase
	extra    []field  // workload-specific figures, in print order
	failures []string // problems that fail the run besides errors and wrong results
}

// field is one named figure of a summary.
type field struct {
	key string
	val any
}

// runner is one run: the options, the contexts that bound it and what clients record.
type runner struct {
	o     options
	cfg   *pgx.ConnConfig // parsed -url; copied for each connection
	stop  context.Context // ends at the first SIGINT/SIGTERM
	hard  context.Context // ends at -timeout; every operation runs under it
	stats *Stats

	connMu   sync.Mutex
	connects Hist // startup latency of every connection opened
	connTook time.Duration

	progress io.Writer
}

// logf prints a progress line for a person watching.
func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.progress, "pgload: "+format+"\n", a...)
}

// phase returns the context of the measured phase: it ends after -duration, at a signal,
// or at -timeout.
func (r *runner) phase() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.hard, r.o.duration)
	unhook := context.AfterFunc(r.stop, cancel)
	return ctx, func() { unhook(); cancel() }
}

// op returns the context of one client operation: -op-timeout, within -timeout. It does
// not end with the phase, so operations under way when the phase ends finish cleanly.
func (r *runner) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.hard, r.o.opTimeout)
}

// dialPgx opens a pgx connection whose statements run in mode.
func (r *runner) dialPgx(mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg := r.cfg.Copy()
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(r.hard, r.o.connectTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// connectAll opens n connections with dial, -connect-concurrency at a time, recording each
// one's latency and counting failures under "connect". It returns the connections that
// opened, in order, and stops starting new ones at a signal or -timeout.
func connectAll[C any](r *runner, n int, dial func(i int) (C, error)) []C {
	r.logf("connecting %d clients, %d at a time", n, r.o.connectConcurrency)
	conns := make([]C, n)
	ok := make([]bool, n)
	start := time.Now()
	halt := func() bool { return r.stop.Err() != nil || r.hard.Err() != nil }
	parallel(n, r.o.connectConcurrency, halt, func(i int) {
		t0 := time.Now()
		c, err := dial(i)
		if err != nil {
			r.stats.Error("connect", err)
			return
		}
		took := time.Since(t0)
		r.connMu.Lock()
		r.connects.Add(took)
		r.connMu.Unlock()
		conns[i], ok[i] = c, true
	})
	opened := conns[:0]
	for i, c := range conns {
		if ok[i] {
			opened = append(opened, c)
		}
	}
	r.connMu.Lock()
	r.connTook = time.Since(start)
	r.connMu.Unlock()
	r.logf("connected %d of %d in %.2fs", len(opened), n, r.connTook.Seconds())
	return opened
}

// parallel runs fn(i) for each i in [0, n), at most limit at once, and waits for them. It
// starts no more once halt (if not nil) reports true.
func parallel(n, limit int, halt func() bool, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		if halt != nil && halt() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// connectPgx opens n pgx connections in mode; it fails when none opened.
func (r *runner) connectPgx(n int, mode pgx.QueryExecMode) ([]*pgx.Conn, error) {
	conns := connectAll(r, n, func(int) (*pgx.Conn, error) { return r.dialPgx(mode) })
	if len(conns) == 0 && r.stop.Err() == nil {
		return nil, errors.New("no client could connect")
	}
	return conns, nil
}

// wrongResult is a step's report of an answer that is not what it should be.
type wrongResult struct{ msg string }

func (w *wrongResult) Error() string { return w.msg }

// wrongf returns a wrongResult.
func wrongf(format string, a ...any) error { return &wrongResult{fmt.Sprintf(format, a...)} }

// step is one unit of a client's work (a transaction, a query, a sticky sequence) on its
// connection. It returns a *wrongResult for a wrong answer.
type step func(ctx context.Context, id int, c *pgx.Conn) error

// drive runs do for each connection in a goroutine of its own until ctx ends, counting a
// transaction (and its latency) per successful or wrong step and an error per failed
// one. A client whose connection broke connects again, at most every 100 ms. Each client
// closes its connection at the end. drive returns the seconds the phase lasted.
func (r *runner) drive(ctx context.Context, conns []*pgx.Conn, mode pgx.QueryExecMode, do step) float64 {
	r.logf("running %d clients for %s", len(conns), r.o.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for id, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { closePgx(c) }()
			for ctx.Err() == nil {
				if c == nil || c.IsClosed() {
					if c = r.reconnect(ctx, mode); c == nil {
						return
					}
				}
				opCtx, cancel := r.op()
				t0 := time.Now()
				err := do(opCtx, id, c)
				took := time.Since(t0)
				cancel()
				var wrong *wrongResult
				switch {
				case err == nil:
					r.stats.Done(id, took)
				case errors.As(err, &wrong):
					r.stats.Done(id, took)
					r.stats.Wrong(fmt.Sprintf("client %d: %s", id, wrong.msg))
				default:
					r.stats.Error("", err)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds()
}

// reconnect opens a new connection for a client whose connection broke, trying until ctx
// ends; it returns nil then.
func (r *runner) reconnect(ctx context.Context, mode pgx.QueryExecMode) *pgx.Conn {
	for ctx.Err() == nil {
		c, err := r.dialPgx(mode)
		if err == nil {
			return c
		}
		r.stats.Error("reconnect", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// closePgx closes c, waiting 5 s at most; c may be nil.
func closePgx(c *pgx.Conn) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// closeConns closes the low-level connection of each of conns, -connect-concurrency at a
// time, 5 s at most each.
func closeConns[C any](r *runner, conns []C, pc func(C) *pgconn.PgConn) {
	parallel(len(conns), r.o.connectConcurrency, nil, func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pc(conns[i]).Close(ctx)
	})
}
