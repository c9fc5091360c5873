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
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/proxy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Environ, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pgmux:", err)
		os.Exit(1)
	}
}

// environment is the process environment as pgmux reads it, "NAME=value" each (os.Environ;
// a fixed list, or nil, in tests). Read at start and at each reload.
type environment func() []string

// getter looks names up in one reading of the environment; the last of a repeated name
// wins, as with os.Getenv.
func (e environment) getter() (vars []string, get func(string) string) {
	if e != nil {
		vars = e()
	}
	return vars, func(name string) string {
		for i := len(vars) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(vars[i], "="); k == name {
				return v
			}
		}
		return ""
	}
}

// loadConfig builds the configuration from the ini file or the upstream URL, then
// environment and flags, in that order of precedence (flags win).
func loadConfig(f *flags, env environment) (*config.Config, map[string]config.Credential, error) {
	var cfg *config.Config
	var err error
	vars, getenv := env.getter()
	upstream := f.upstream
	if upstream == "" {
		upstream = getenv("PGMUX_UPSTREAM")
	}
	if upstream == "" && f.iniPath == "" {
		upstream = getenv("DATABASE_URL")
	}
	if f.iniPath != "" && f.upstream != "" {
		return nil, nil, fmt.Errorf("both a configuration file (%s) and --upstream given: pgmux takes one; drop one of them", f.iniPath)
	}
	switch {
	case f.iniPath != "":
		cfg, err = config.Load(f.iniPath)
		if err == nil && upstream != "" {
			cfg.Warnings = append(cfg.Warnings, "PGMUX_UPSTREAM is ignored: the configuration comes from "+f.iniPath)
		}
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
	cfg.Warnings = append(cfg.Warnings, config.EnvWarnings(vars)...)
	if err := applyFlags(cfg, f); err != nil {
		return nil, nil, err
	}
	// config.Load validated the file alone; the environment and flags may have changed
	// what it checked (PGMUX_AUTH_TYPE=hba with no auth_hba_file), so check the result.
	if err := validate(cfg); err != nil {
		return nil, nil, err
	}
	config.ShareUpstreamPassword(cfg)
	creds := cfg.Credentials()
	if cfg.AuthFile != "" {
		fromFile, err := config.LoadUserlist(cfg.ResolvePath(cfg.AuthFile))
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

// validate runs config.Validate on the final configuration (file or URL, then environment
// and flags), naming where it came from and, in zero-config mode, what cannot be set there.
func validate(cfg *config.Config) error {
	err := cfg.Validate()
	if err == nil {
		return nil
	}
	if !cfg.FromURL {
		return fmt.Errorf("%s with the environment and flags applied: %w", cfg.Path, err)
	}
	hint := ""
	switch cfg.AuthType {
	case config.AuthHBA:
		hint = "; auth_hba_file can only be set in a pgbouncer.ini: use PGMUX_AUTH_TYPE md5, scram-sha-256, plain or trust, or run pgmux with an ini file"
	case config.AuthCert:
		hint = "; client TLS (client_tls_*) can only be set in a pgbouncer.ini: use PGMUX_AUTH_TYPE md5, scram-sha-256, plain or trust, or run pgmux with an ini file"
	}
	return fmt.Errorf("zero-config mode (upstream URL %s): %w%s", cfg.Path, err, hint)
}

func applyFlags(cfg *config.Config, f *flags) error {
	if f.listen != "" {
		if err := config.SetListen(cfg, f.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	sets := []struct{ flag, key, value string }{
		{"pool-mode", "pool_mode", f.poolMode}, {"metrics-addr", "metrics_addr", f.metricsAddr},
		{"auth-type", "auth_type", f.authType},
		{"admin-users", "admin_users", f.adminUsers}, {"stats-users", "stats_users", f.statsUsers},
	}
	if f.poolSize > 0 {
		sets = append(sets, struct{ flag, key, value string }{"pool-size", "default_pool_size", strconv.Itoa(f.poolSize)})
	}
	if f.maxClientConn > 0 {
		sets = append(sets, struct{ flag, key, value string }{"max-client-conn", "max_client_conn", strconv.Itoa(f.maxClientConn)})
	}
	for _, s := range sets {
		if s.value == "" {
			continue
		}
		if err := config.Set(cfg, s.key, s.value); err != nil {
			return fmt.Errorf("--%s: %w", s.flag, err)
		}
	}
	return nil
}

func run(ctx context.Context, args []string, env environment, stdout, stderr io.Writer) (err error) {
	f, err := parseFlags(args, stdout, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.healthcheck != "" {
		return runHealthcheck(f.healthcheck)
	}
	if f.showVersion {
		fmt.Fprintln(stdout, versionLine())
		return nil
	}
	cfg, creds, err := loadConfig(f, env)
	if err != nil {
		return err
	}
	log, sink, err := newLogger(cfg, f.logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	ver, detail := buildVersion()
	defer func() {
		// The last line a process manager's log shows.
		if err != nil {
			log.Error("pgmux exiting", zap.Int("pid", os.Getpid()), zap.Error(err))
			return
		}
		log.Info("pgmux exiting", zap.Int("pid", os.Getpid()))
	}()
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
	var procsCtl *procsControl
	srv, err = proxy.New(proxy.Options{Config: cfg, Credentials: creds, Logger: log,
		Registry: reg, Version: ver, ApplyLogging: sink.apply,
		Reload: func() error { return reload(srv, procsCtl, f, env, log) },
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
	// After proxy.New: it made one client loop per P the process may use.
	procsCtl = newProcsControl(runtime.GOMAXPROCS(0), srv, log, reg)
	procsCtl.set(cfg.AdaptiveProcs)
	defer procsCtl.close()
	if err := srv.Listen(); err != nil {
		return err
	}
	addrs := make([]string, 0)
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	log.Info("pgmux listening", zap.String("version", ver), zap.String("build", detail), zap.Int("pid", os.Getpid()),
		zap.Strings("addrs", addrs), zap.String("pool_mode", cfg.PoolMode.String()), zap.Int("default_pool_size", cfg.DefaultPoolSize))
	return serveUntilStopped(ctx, srv, shutdownReq, func() error { return reload(srv, procsCtl, f, env, log) }, log)
}

func reload(srv *proxy.Server, procsCtl *procsControl, f *flags, env environment, log *zap.Logger) error {
	cfg, creds, err := loadConfig(f, env)
	if err != nil {
		srv.ReloadFailed() // srv.Reload counts the reloads that reach it
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
	procsCtl.set(cfg.AdaptiveProcs)
	log.Info("configuration reloaded")
	return nil
}
