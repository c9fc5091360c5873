// Command pgmux is a PostgreSQL connection pooler that reads PgBouncer's configuration.
//
//	pgmux [flags] [path/to/pgbouncer.ini]
//	pgmux --upstream postgres://user:pass@host:5432/db
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/proxy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pgmux:", err)
		os.Exit(1)
	}
}

type flags struct {
	upstream, listen, poolMode, metricsAddr, authType, logLevel string
	pprofAddr                                                   string
	poolSize, maxClientConn                                     int
	showVersion                                                 bool
	iniPath                                                     string
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("pgmux", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pgmux [flags] [pgbouncer.ini]\n\n"+
			"With no ini file, pgmux pools one upstream given by --upstream, PGMUX_UPSTREAM or DATABASE_URL.\n"+
			"Environment: PGMUX_LISTEN, PGMUX_POOL_MODE, PGMUX_POOL_SIZE, PGMUX_MAX_CLIENT_CONN, PGMUX_METRICS_ADDR, PGMUX_AUTH_TYPE.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.upstream, "upstream", "", "upstream PostgreSQL URL (postgres://user:pass@host:5432/db)")
	fs.StringVar(&f.listen, "listen", "", "listen address host:port (default from config, else *:6432)")
	fs.StringVar(&f.poolMode, "pool-mode", "", "pool mode: session, transaction or statement")
	fs.IntVar(&f.poolSize, "pool-size", 0, "default_pool_size")
	fs.IntVar(&f.maxClientConn, "max-client-conn", 0, "max_client_conn")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "address for /metrics, /healthz and /readyz")
	fs.StringVar(&f.authType, "auth-type", "", "auth_type for clients")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go profiling endpoints (/debug/pprof) on this address, for performance work")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch fs.NArg() {
	case 0:
	case 1:
		f.iniPath = fs.Arg(0)
	default:
		return nil, fmt.Errorf("expected at most one config file, got %d arguments", fs.NArg())
	}
	return f, nil
}

// loadConfig builds the configuration from the ini file or the upstream URL, then
// environment and flags, in that order of precedence (flags win).
func loadConfig(f *flags, getenv func(string) string) (*config.Config, map[string]config.Credential, error) {
	var cfg *config.Config
	var err error
	upstream := f.upstream
	if upstream == "" {
		upstream = getenv("PGMUX_UPSTREAM")
	}
	if upstream == "" && f.iniPath == "" {
		upstream = getenv("DATABASE_URL")
	}
	switch {
	case f.iniPath != "":
		cfg, err = config.Load(f.iniPath)
	case upstream != "":
		cfg, err = config.FromURL(upstream)
	default:
		return nil, nil, errors.New("no configuration: give a pgbouncer.ini path, --upstream, PGMUX_UPSTREAM or DATABASE_URL")
	}
	if err != nil {
		return nil, nil, err
	}
	if err := config.ApplyEnv(cfg, getenv); err != nil {
		return nil, nil, err
	}
	if err := applyFlags(cfg, f); err != nil {
		return nil, nil, err
	}
	creds := cfg.Credentials()
	if cfg.AuthFile != "" {
		path := cfg.AuthFile
		if !filepath.IsAbs(path) && f.iniPath != "" {
			path = filepath.Join(filepath.Dir(f.iniPath), path)
		}
		fromFile, err := config.LoadUserlist(path)
		if err != nil {
			return nil, nil, err
		}
		if creds == nil {
			creds = fromFile
		} else {
			for k, v := range fromFile {
				creds[k] = v
			}
		}
	}
	return cfg, creds, nil
}

func applyFlags(cfg *config.Config, f *flags) error {
	if f.listen != "" {
		if err := config.SetListen(cfg, f.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	sets := []struct{ key, value string }{
		{"pool_mode", f.poolMode}, {"metrics_addr", f.metricsAddr}, {"auth_type", f.authType},
	}
	if f.poolSize > 0 {
		sets = append(sets, struct{ key, value string }{"default_pool_size", strconv.Itoa(f.poolSize)})
	}
	if f.maxClientConn > 0 {
		sets = append(sets, struct{ key, value string }{"max_client_conn", strconv.Itoa(f.maxClientConn)})
	}
	for _, s := range sets {
		if s.value == "" {
			continue
		}
		if err := config.Set(cfg, s.key, s.value); err != nil {
			return fmt.Errorf("--%s: %w", s.key, err)
		}
	}
	return nil
}

func newLogger(cfg *config.Config, level string, stderr io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if cfg.Verbose > 0 && lvl > zapcore.DebugLevel {
		lvl = zapcore.DebugLevel
	}
	out := zapcore.AddSync(stderr)
	isTTY := false
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			isTTY = true
		}
	}
	if cfg.LogFile != "" {
		lf, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("logfile: %w", err)
		}
		out = zapcore.NewMultiWriteSyncer(out, zapcore.AddSync(lf))
		isTTY = false
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if isTTY {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, out, lvl)), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if url, ok := healthcheckURL(args); ok {
		return runHealthcheck(url)
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.showVersion {
		fmt.Fprintln(stderr, "pgmux", version)
		return nil
	}
	cfg, creds, err := loadConfig(f, getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, f.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if cfg.PidFile != "" {
		if err := os.WriteFile(cfg.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pidfile: %w", err)
		}
		defer os.Remove(cfg.PidFile)
	}
	if f.pprofAddr != "" {
		go servePprof(f.pprofAddr, log)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	shutdownReq := make(chan proxy.ShutdownMode, 1)
	var srv *proxy.Server
	srv, err = proxy.New(proxy.Options{Config: cfg, Credentials: creds, Logger: log,
		Registry: reg, Version: version,
		Reload: func() error { return reload(srv, f, getenv, log) },
		OnShutdown: func(m proxy.ShutdownMode) {
			select {
			case shutdownReq <- m:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	addrs := make([]string, 0)
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	log.Info("pgmux listening", zap.String("version", version), zap.Strings("addrs", addrs),
		zap.String("pool_mode", cfg.PoolMode.String()), zap.Int("default_pool_size", cfg.DefaultPoolSize))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	for {
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
			return srv.Close()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				_ = reload(srv, f, getenv, log)
			case syscall.SIGINT:
				log.Info("SIGINT: exiting now")
				return srv.Close()
			case syscall.SIGTERM:
				return drain(srv, "SIGTERM", log)
			}
		case mode := <-shutdownReq:
			if mode == proxy.ShutdownImmediate {
				log.Info("SHUTDOWN on the admin console: exiting now")
				_ = srv.Close() // reports the clients it had to cut, which SHUTDOWN asked for
				return nil
			}
			return drain(srv, "SHUTDOWN on the admin console", log)
		}
	}
}

// drain stops accepting and waits up to shutdown_timeout for clients to finish.
func drain(srv *proxy.Server, why string, log *zap.Logger) error {
	timeout := srv.Config().ShutdownTimeout
	log.Info(why+": draining", zap.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := srv.Shutdown(sctx)
	cancel()
	if err != nil {
		log.Warn("drain incomplete", zap.Error(err))
	}
	return nil
}

func reload(srv *proxy.Server, f *flags, getenv func(string) string, log *zap.Logger) error {
	cfg, creds, err := loadConfig(f, getenv)
	if err != nil {
		log.Error("reload failed; keeping the current configuration", zap.Error(err))
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if err := srv.Reload(cfg, creds); err != nil {
		log.Error("reload failed; keeping the current configuration", zap.Error(err))
		return err
	}
	log.Info("configuration reloaded")
	return nil
}
