package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// envSettings maps environment variables to the [pgbouncer] keys they set.
var envSettings = []struct{ env, key string }{
	{"PGMUX_POOL_MODE", "pool_mode"},
	{"PGMUX_POOL_SIZE", "default_pool_size"},
	{"PGMUX_MAX_CLIENT_CONN", "max_client_conn"},
	{"PGMUX_METRICS_ADDR", "metrics_addr"},
	{"PGMUX_AUTH_TYPE", "auth_type"},
	{"PGMUX_ADMIN_USERS", "admin_users"},
	{"PGMUX_STATS_USERS", "stats_users"},
	{"PGMUX_CLIENT_LOOP", "client_loop"},
	{"PGMUX_ADAPTIVE_PROCS", "adaptive_procs"},
}

// EnvNames lists the environment variables ApplyEnv reads, PGMUX_LISTEN first, for
// documentation checks (--help and the README must name each).
func EnvNames() []string {
	out := []string{"PGMUX_LISTEN"}
	for _, e := range envSettings {
		out = append(out, e.env)
	}
	return out
}

// EnvWarnings names each PGMUX_ variable in environ ("NAME=value", as os.Environ gives
// it) that pgmux does not read. A misspelt ini key stops pgmux at start; a misspelt
// variable (PGMUX_POOLSIZE, a [pgbouncer] key such as PGMUX_DEFAULT_POOL_SIZE) would
// otherwise leave the default in force without a word, on a platform where the
// environment is the only configuration. The hint is the variable meant, when one is
// close or sets that key, else where such a key is set.
func EnvWarnings(environ []string) []string {
	known := append([]string{"PGMUX_UPSTREAM"}, EnvNames()...)
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PGMUX_") || slices.Contains(known, name) {
			continue
		}
		out = append(out, fmt.Sprintf("environment variable %s is not one pgmux reads and is ignored%s",
			name, envHint(name, known)))
	}
	slices.Sort(out)
	return out
}

func envHint(name string, known []string) string {
	key := strings.ToLower(strings.TrimPrefix(name, "PGMUX_"))
	for _, e := range envSettings {
		if e.key == key {
			return fmt.Sprintf(" (did you mean %q?)", e.env)
		}
	}
	if h := didYouMean(name, known); h != "" {
		return h
	}
	if _, ok := settingIndex[key]; ok {
		return fmt.Sprintf(" (%s can be set in a pgbouncer.ini only)", key)
	}
	return " (pgmux reads " + strings.Join(known, ", ") + "; flags: pgmux --help)"
}

// ApplyEnv overrides settings from the environment, read through getenv (os.Getenv in
// production). Empty or unset variables change nothing. PGMUX_LISTEN takes host:port, or
// a comma-separated list of them ("127.0.0.1:6432,[::1]:6432", or ":6432" for all
// addresses), and sets listen_addr and listen_port (SetListen); the others go through
// Set: PGMUX_POOL_MODE, PGMUX_POOL_SIZE (default_pool_size), PGMUX_MAX_CLIENT_CONN,
// PGMUX_METRICS_ADDR, PGMUX_AUTH_TYPE, PGMUX_ADMIN_USERS and PGMUX_STATS_USERS
// (comma-separated names), PGMUX_CLIENT_LOOP, PGMUX_ADAPTIVE_PROCS.
// Every bad variable is reported, each as "NAME: reason".
func ApplyEnv(c *Config, getenv func(string) string) error {
	var errs []error
	if v := strings.TrimSpace(getenv("PGMUX_LISTEN")); v != "" {
		if err := SetListen(c, v); err != nil {
			errs = append(errs, fmt.Errorf("PGMUX_LISTEN: %w", err))
		}
	}
	for _, e := range envSettings {
		v := strings.TrimSpace(getenv(e.env))
		if v == "" {
			continue
		}
		if err := Set(c, e.key, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.env, err))
		}
	}
	return errors.Join(errs...)
}

// SetListen sets listen_addr and listen_port from a comma-separated list of host:port
// addresses ("127.0.0.1:6432,[::1]:6432"), as PGMUX_LISTEN and --listen give it. An empty
// host or "*" means all addresses, IPv4 and IPv6. pgmux listens on one port on every
// address (listen_port, as PgBouncer), so the ports must agree.
func SetListen(c *Config, list string) error {
	next := *c
	var hosts []string
	port := 0
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("%q has an empty address", list)
		}
		host, p, err := net.SplitHostPort(item)
		if err != nil {
			return fmt.Errorf("%q is not host:port", item)
		}
		if host == "" {
			host = "*"
		}
		if err := apply(&next, "listen_port", p); err != nil {
			return fmt.Errorf("listen_port: %w", err)
		}
		if port != 0 && next.ListenPort != port {
			return fmt.Errorf("%q: ports %d and %d differ: pgmux listens on one port (listen_port) on every address", list, port, next.ListenPort)
		}
		port = next.ListenPort
		hosts = append(hosts, host)
	}
	if err := apply(&next, "listen_addr", strings.Join(hosts, ",")); err != nil {
		return fmt.Errorf("listen_addr: %w", err)
	}
	c.ListenAddr, c.ListenPort = next.ListenAddr, next.ListenPort
	return nil
}
