// Command pgload drives load that pgbench cannot make against PostgreSQL or a pooler in
// front of it: ten thousand idle clients, LISTEN fan-out, prepared-statement churn and mixed
// traffic with session-sticky clients. Every client checks its results, so a run reports
// wrong answers and lost notifications as well as throughput and latency.
//
//	pgload -url 'postgres://app:pw@127.0.0.1:6432/app?sslmode=disable' -workload select -clients 50 -duration 10s
//
// Workloads (-workload):
//
//	select    clients run -sql (default SELECT 1) back to back: plain throughput and latency
//	idle      open -clients connections (pgconn, -connect-concurrency at a time), report
//	          connect latency, hold them for -duration with SELECT 1 on a random one at
//	          -rate per second, then check that every one still answers
//	listen    -clients listeners LISTEN on -channels channels; -notifiers clients send
//	          -notifies numbered NOTIFYs each; every listener must get each one of its
//	          channel exactly once and in order; latency is send to delivery
//	prepared  clients run statements drawn from -statements texts through pgx's statement
//	          cache and through named Prepare/Deallocate, checking every value
//	sticky    most clients run short UPDATE/SELECT transactions on pgload_kv; a -sticky-ratio
//	          of them take advisory locks, SET/RESET, temp tables and LISTEN and check the
//	          state holds between their statements
//
// It prints a summary on stdout (with -json, one JSON object on stdout and the summary on
// stderr) and exits 1 when any result was wrong, a notification was lost, duplicated or
// reordered, or more than -max-errors operations failed. The run lasts -duration after
// the clients connect; -timeout bounds everything. SIGINT or SIGTERM ends the run early
// and still prints the summary; a second one exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// options are the command line.
type options struct {
	url, workload      string
	clients            int
	duration, timeout  time.Duration
	connectTimeout     time.Duration
	opTimeout, drain   time.Duration
	json               bool
	maxErrors          int64
	rate               float64
	connectConcurrency int
	channels           int
	notifiers          int
	notifies           int
	statements         int
	stickyRatio        float64
	sql                string
	execMode           string
	unique             bool
	mode               pgx.QueryExecMode
}

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

// errFailed is a run whose verdict is a failure: exit status 1 after the summary.
var errFailed = errors.New("run failed")

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "pgload: stopping early; a second signal exits at once")
		cancel()
		<-sigs
		os.Exit(130)
	}()
	if err := raiseNoFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "pgload: raise RLIMIT_NOFILE:", err)
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "pgload:", err)
		os.Exit(2)
	case errors.Is(err, errFailed):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "pgload:", err)
		os.Exit(1)
	}
}

// raiseNoFileLimit lifts the soft limit on open files to the hard one: each client is a
// descriptor.
func raiseNoFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// parseFlags reads the command line; output receives usage text and flag errors.
func parseFlags(args []string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("pgload", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: pgload -url URL -workload select|idle|listen|prepared|sticky [flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", os.Getenv("DATABASE_URL"), "PostgreSQL URL or conninfo of the server or pooler (default $DATABASE_URL)")
	fs.StringVar(&o.workload, "workload", "select", "select, idle, listen, prepared or sticky")
	fs.IntVar(&o.clients, "clients", 10, "client connections (listen: listeners)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the load runs once the clients are connected")
	fs.DurationVar(&o.timeout, "timeout", 0, "hard bound on the whole run (default -duration plus 2m)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 30*time.Second, "bound on one connection's startup")
	fs.DurationVar(&o.opTimeout, "op-timeout", 30*time.Second, "bound on one client operation")
	fs.BoolVar(&o.json, "json", false, "print one JSON object on stdout (the summary goes to stderr)")
	fs.Int64Var(&o.maxErrors, "max-errors", 0, "errors allowed before the run fails")
	fs.Float64Var(&o.rate, "rate", 0, "idle: SELECT 1 per second on random clients; listen: NOTIFYs per second in all (0: idle none, listen unthrottled)")
	fs.IntVar(&o.connectConcurrency, "connect-concurrency", 200, "connections being opened at once")
	fs.IntVar(&o.channels, "channels", 10, "listen: channels the listeners spread over")
	fs.IntVar(&o.notifiers, "notifiers", 1, "listen: clients sending NOTIFY")
	fs.IntVar(&o.notifies, "notifies", 1000, "listen: NOTIFYs each notifier sends (fewer if -duration ends first)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "listen: how long listeners wait for the last notifications")
	fs.IntVar(&o.statements, "statements", 500, "prepared: distinct statement texts")
	fs.Float64Var(&o.stickyRatio, "sticky-ratio", 0.1, "sticky: fraction of clients doing session-sticky work")
	fs.StringVar(&o.sql, "sql", "SELECT 1", "select: the statement to run")
	fs.BoolVar(&o.unique, "unique", false, "select: make every statement's text unique (a numbered comment), as literals inlined do")
	fs.StringVar(&o.execMode, "exec-mode", "cache", "pgx query mode for select, sticky and listen notifiers: cache, describe, exec, simple")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return o, o.validate()
}

// execModes are the -exec-mode values.
var execModes = map[string]pgx.QueryExecMode{
	"cache":    pgx.QueryExecModeCacheStatement,
	"describe": pgx.QueryExecModeCacheDescribe,
	"exec":     pgx.QueryExecModeExec,
	"simple":   pgx.QueryExecModeSimpleProtocol,
}

func (o *options) validate() error {
	bad := func(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }
	var ok bool
	switch {
	case o.url == "":
		return bad("-url is required (or set DATABASE_URL)")
	case workloads[o.workload] == nil:
		return bad("unknown -workload %q (want %s)", o.workload, strings.Join(slices.Sorted(maps.Keys(workloads)), ", "))
	case o.clients < 1, o.connectConcurrency < 1:
		return bad("-clients and -connect-concurrency must be at least 1")
	case o.duration <= 0, o.connectTimeout <= 0, o.opTimeout <= 0, o.timeout < 0, o.drain < 0:
		return bad("durations must be positive")
	case o.rate < 0, o.maxErrors < 0:
		return bad("-rate and -max-errors must not be negative")
	case o.channels < 1, o.notifiers < 1, o.notifies < 0, o.statements < 1:
		return bad("-channels, -notifiers and -statements must be at least 1, -notifies at least 0")
	case o.stickyRatio < 0 || o.stickyRatio > 1:
		return bad("-sticky-ratio must be between 0 and 1")
	}
	if o.mode, ok = execModes[o.execMode]; !ok {
		return bad("unknown -exec-mode %q (want %s)", o.execMode, strings.Join(slices.Sorted(maps.Keys(execModes)), ", "))
	}
	if o.timeout == 0 {
		o.timeout = o.duration + 2*time.Minute
	}
	return nil
}

// run parses args, runs the workload until stop ends or -duration passes, and prints the
// summary. It returns errFailed when the verdict is a failure.
func run(stop context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(o.url)
	if err != nil {
		return usageError{fmt.Errorf("-url: %w", err)}
	}
	hard, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	r := &runner{o: o, cfg: cfg, stop: stop, hard: hard, stats: NewStats(), progress: stderr}
	out, err := workloads[o.workload](r)
	if err != nil { // the run could not be set up: still a summary, with the errors counted
		out.failures = append(out.failures, err.Error())
	}
	s := r.summary(out)
	text, machine := stdout, io.Writer(nil)
	if o.json {
		text, machine = stderr, stdout
	}
	s.writeText(text)
	if machine != nil {
		if err := s.writeJSON(machine); err != nil {
			return err
		}
	}
	if len(s.Failures) > 0 {
		return errFailed
	}
	return nil
}
