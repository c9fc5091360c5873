package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

type flags struct {
	upstream, listen, poolMode, metricsAddr, authType, logLevel string
	adminUsers, statsUsers                                      string
	pprofAddr, healthcheck                                      string
	poolSize, maxClientConn                                     int
	showVersion                                                 bool
	iniPath                                                     string
}

// usageHead is printed by --help before the flag list.
const usageHead = `usage: pgmux [flags] [pgbouncer.ini]
       pgmux --upstream postgres://user:pass@host:5432/db [flags]
       pgmux -healthcheck http://127.0.0.1:9127/readyz

With an ini file, pgmux reads PgBouncer's pgbouncer.ini (and its auth_file). Without one,
it pools one upstream given by --upstream, PGMUX_UPSTREAM or DATABASE_URL (zero-config):
transaction pooling, listening on 127.0.0.1 and ::1 port 6432 (--listen to widen), clients
log in with the upstream URL's user and password, and so do --admin-users and --stats-users
on the console (psql -h 127.0.0.1 -p 6432 -U <user> pgbouncer).

Environment (flags win over environment, environment over the ini file):
  PGMUX_UPSTREAM, DATABASE_URL, PGMUX_LISTEN, PGMUX_POOL_MODE, PGMUX_POOL_SIZE,
  PGMUX_MAX_CLIENT_CONN, PGMUX_METRICS_ADDR, PGMUX_AUTH_TYPE, PGMUX_ADMIN_USERS,
  PGMUX_STATS_USERS, PGMUX_CLIENT_LOOP, PGMUX_ADAPTIVE_PROCS.

Signals, as PgBouncer 1.23+: SIGINT safe shutdown (wait until every server is released),
SIGTERM super safe shutdown (wait until every client has left), a second SIGINT or SIGTERM
or SIGQUIT immediate shutdown, SIGHUP reload, SIGUSR1 PAUSE, SIGUSR2 RESUME.

Flags:
`

// parseFlags parses the command line. --help prints the usage to stdout; a bad flag
// prints it to stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := newFlagSet(f, stderr)
	fs.Usage = func() {
		out := stderr
		if helpAsked(args) {
			out = stdout
		}
		fmt.Fprint(out, usageHead)
		fs.SetOutput(out)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	// Flags may come after the ini path too (pgmux pgbouncer.ini --listen :6432): the flag
	// package stops at the first argument that is not one, so parse again after it.
	// After "--" everything is an argument.
	var paths []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		if endsFlags(rest, fs.NArg()) {
			paths = append(paths, fs.Args()...)
			break
		}
		paths = append(paths, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(paths) {
	case 0:
	case 1:
		f.iniPath = paths[0]
	default:
		return nil, fmt.Errorf("expected at most one config file, got %d: %s", len(paths), strings.Join(paths, " "))
	}
	return f, nil
}

// endsFlags reports whether the flag package stopped parsing rest at a "--" (whose
// remaining n arguments are then all positional).
func endsFlags(rest []string, n int) bool {
	i := len(rest) - n - 1
	return i >= 0 && rest[i] == "--"
}

// helpAsked reports whether args ask for the usage (-h, -help, --help).
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		case "--":
			return false
		}
	}
	return false
}

// newFlagSet defines every flag into f.
func newFlagSet(f *flags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pgmux", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.upstream, "upstream", "", "upstream PostgreSQL URL `postgres://user:pass@host:5432/db`, for zero-config mode")
	fs.StringVar(&f.listen, "listen", "", "listen on `host:port[,host:port...]`, one port for all (\"127.0.0.1:6432,[::1]:6432\"); \":6432\" for every address, IPv4 and IPv6; \"[::]:6432\" is IPv6 only, as in PgBouncer (default: listen_addr and listen_port, or 127.0.0.1 and ::1 port 6432 in zero-config mode)")
	fs.StringVar(&f.poolMode, "pool-mode", "", "pool_mode: session, transaction or statement (zero-config default: transaction)")
	fs.IntVar(&f.poolSize, "pool-size", 0, "default_pool_size: server connections per database and user")
	fs.IntVar(&f.maxClientConn, "max-client-conn", 0, "max_client_conn")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "metrics_addr: `host:port` for /metrics, /healthz and /readyz")
	fs.StringVar(&f.authType, "auth-type", "", "auth_type for clients: trust, plain, md5, scram-sha-256, any or hba")
	fs.StringVar(&f.adminUsers, "admin-users", "", "admin_users: comma-separated `users` allowed every console command")
	fs.StringVar(&f.statsUsers, "stats-users", "", "stats_users: comma-separated `users` allowed the console's SHOW commands")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go profiling endpoints (/debug/pprof) on this `host:port`, for performance work")
	fs.StringVar(&f.healthcheck, "healthcheck", "", "GET `URL` and exit 0 on HTTP 200, else 1 (a health check for images without curl); nothing else runs")
	fs.BoolVar(&f.showVersion, "version", false, "print the version (module version and VCS revision) and exit")
	return fs
}
