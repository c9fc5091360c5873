package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// setting is one [pgbouncer] key: its default (as ini text), whether RELOAD or the admin
// console's SET may change it at run time, how to parse a value into a Config and how to
// print the current value back.
type setting struct {
	name       string
	def        string
	reloadable bool
	parse      func(c *Config, v string) error
	show       func(c *Config) string
	// keep copies the value from src to dst: a reload keeps a restart-only key's value
	// in force (KeepRestartOnly).
	keep func(dst, src *Config)
	// own marks pgmux's keys, which PgBouncer does not have.
	own bool
}

// keepOf is a setting's keep for a value at f.
func keepOf[T any](f func(*Config) *T) func(dst, src *Config) {
	return func(dst, src *Config) { *f(dst) = *f(src) }
}

const (
	reload   = true
	noReload = false
	maxInt   = math.MaxInt32
)

// defaultAuthQuery is PgBouncer 1.25's auth_query default.
const defaultAuthQuery = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

// CheckQueryEmpty is the server_check_query value (and PgBouncer 1.25's default) that
// means "send an empty query as the health check". See Config.CheckQuery.
const CheckQueryEmpty = "<empty>"

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// settings is the [pgbouncer] table, in Dump order. Defaults are PgBouncer 1.25's (see
// testdata/pgbouncer-1.25-settings.tsv); the keys marked own, last, are pgmux's. Built
// once at package initialisation, then read-only.
var settings = buildSettings()

// settingIndex finds a table entry by lower-case name. Read-only after initialisation.
var settingIndex = indexSettings(settings)

// buildSettings assembles the table.
func buildSettings() []setting {
	s := coreSettings()
	s = append(s, tlsSettings("client_tls", "disable", func(c *Config) *TLSSettings { return &c.ClientTLS })...)
	s = append(s, tlsSettings("server_tls", "prefer", func(c *Config) *TLSSettings { return &c.ServerTLS })...)
	s = append(s,
		intSetting("max_prepared_statements", "200", reload, 0, maxInt, func(c *Config) *int { return &c.MaxPreparedStatements }),
		boolSetting("application_name_add_host", "0", reload, func(c *Config) *bool { return &c.ApplicationNameAddHost }))
	own := []setting{
		strSetting("metrics_addr", "", noReload, func(c *Config) *string { return &c.MetricsAddr }),
		enumSetting("prepared_statement_mode", "cache", reload, []string{"cache", "unnamed"}, func(c *Config) *string { return &c.PreparedStatementMode }),
		boolSetting("cache_unnamed_statements", "0", reload, func(c *Config) *bool { return &c.CacheUnnamedStatements }),
		boolSetting("client_loop", "1", reload, func(c *Config) *bool { return &c.ClientLoop }),
		boolSetting("adaptive_procs", "1", reload, func(c *Config) *bool { return &c.AdaptiveProcs }),
		enumSetting("listen_mode", "multiplex", reload, []string{"multiplex", "pin"}, func(c *Config) *string { return &c.ListenMode }),
		intSetting("direct_pool_size", "5", reload, 0, maxInt, func(c *Config) *int { return &c.DirectPoolSize }),
		durSetting("shutdown_timeout", "30", reload, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		durSetting("failover_timeout", "30", reload, func(c *Config) *time.Duration { return &c.FailoverTimeout }),
		enumSetting("replica_reads", "off", reload, ReplicaReadsModes, func(c *Config) *string { return &c.ReplicaReads }),
		intSetting("replica_max_lag", "10000", reload, 0, maxInt, func(c *Config) *int { return &c.ReplicaMaxLag }),
		intSetting("replica_max_wait", "1000", reload, 0, maxInt, func(c *Config) *int { return &c.ReplicaMaxWait }),
	}
	for i := range own {
		own[i].own = true
	}
	return append(s, own...)
}

// indexSettings maps each setting's name to its entry.
func indexSettings(table []setting) map[string]*setting {
	idx := make(map[string]*setting, len(table))
	for i := range table {
		idx[table[i].name] = &table[i]
	}
	return idx
}

// coreSettings returns the listener, auth, pool, timeout, logging and TCP settings.
func coreSettings() []setting {
	return []setting{
		listenAddrSetting(),
		intSetting("listen_port", "6432", noReload, 1, 65535, func(c *Config) *int { return &c.ListenPort }),
		strSetting("unix_socket_dir", "/tmp", noReload, func(c *Config) *string { return &c.UnixSocketDir }),
		modeSetting("unix_socket_mode", "0777", noReload, func(c *Config) *int { return &c.UnixSocketMode }),
		authTypeSetting(),
		strSetting("auth_file", "", reload, func(c *Config) *string { return &c.AuthFile }),
		strSetting("auth_hba_file", "", reload, func(c *Config) *string { return &c.AuthHBAFile }),
		strSetting("auth_user", "", reload, func(c *Config) *string { return &c.AuthUser }),
		strSetting("auth_query", defaultAuthQuery, reload, func(c *Config) *string { return &c.AuthQuery }),
		listSetting("admin_users", "", reload, func(c *Config) *[]string { return &c.AdminUsers }),
		listSetting("stats_users", "", reload, func(c *Config) *[]string { return &c.StatsUsers }),

		poolModeSetting(),
		intSetting("default_pool_size", "20", reload, 0, maxInt, func(c *Config) *int { return &c.DefaultPoolSize }),
		intSetting("min_pool_size", "0", reload, 0, maxInt, func(c *Config) *int { return &c.MinPoolSize }),
		intSetting("reserve_pool_size", "0", reload, 0, maxInt, func(c *Config) *int { return &c.ReservePoolSize }),
		durSetting("reserve_pool_timeout", "5", reload, func(c *Config) *time.Duration { return &c.ReservePoolTimeout }),
		intSetting("max_client_conn", "100", reload, 1, maxInt, func(c *Config) *int { return &c.MaxClientConn }),
		intSetting("max_db_connections", "0", reload, 0, maxInt, func(c *Config) *int { return &c.MaxDBConnections }),
		intSetting("max_user_connections", "0", reload, 0, maxInt, func(c *Config) *int { return &c.MaxUserConnections }),

		strSetting("server_reset_query", "DISCARD ALL", reload, func(c *Config) *string { return &c.ServerResetQuery }),
		boolSetting("server_reset_query_always", "0", reload, func(c *Config) *bool { return &c.ServerResetQueryAlways }),
		strSetting("server_check_query", CheckQueryEmpty, reload, func(c *Config) *string { return &c.ServerCheckQuery }),
		durSetting("server_check_delay", "30", reload, func(c *Config) *time.Duration { return &c.ServerCheckDelay }),
		durSetting("server_lifetime", "3600", reload, func(c *Config) *time.Duration { return &c.ServerLifetime }),
		durSetting("server_idle_timeout", "600", reload, func(c *Config) *time.Duration { return &c.ServerIdleTimeout }),
		durSetting("autodb_idle_timeout", "3600", reload, func(c *Config) *time.Duration { return &c.AutodbIdleTimeout }),
		durSetting("server_connect_timeout", "15", reload, func(c *Config) *time.Duration { return &c.ServerConnectTimeout }),
		durSetting("server_login_retry", "15", reload, func(c *Config) *time.Duration { return &c.ServerLoginRetry }),

		durSetting("query_timeout", "0", reload, func(c *Config) *time.Duration { return &c.QueryTimeout }),
		durSetting("query_wait_timeout", "120", reload, func(c *Config) *time.Duration { return &c.QueryWaitTimeout }),
		durSetting("client_idle_timeout", "0", reload, func(c *Config) *time.Duration { return &c.ClientIdleTimeout }),
		durSetting("idle_transaction_timeout", "0", reload, func(c *Config) *time.Duration { return &c.IdleTransactionTimeout }),
		durSetting("transaction_timeout", "0", reload, func(c *Config) *time.Duration { return &c.TransactionTimeout }),
		durSetting("client_login_timeout", "60", reload, func(c *Config) *time.Duration { return &c.ClientLoginTimeout }),
		durSetting("cancel_wait_timeout", "10", reload, func(c *Config) *time.Duration { return &c.CancelWaitTimeout }),
		durSetting("suspend_timeout", "10", reload, func(c *Config) *time.Duration { return &c.SuspendTimeout }),

		listSetting("ignore_startup_parameters", "", reload, func(c *Config) *[]string { return &c.IgnoreStartupParameters }),
		listSetting("track_extra_parameters", "IntervalStyle", noReload, func(c *Config) *[]string { return &c.TrackExtraParameters }),
		intSetting("max_packet_size", "2147483647", reload, 0, math.MaxInt32, func(c *Config) *int { return &c.MaxPacketSize }),

		boolSetting("log_connections", "1", reload, func(c *Config) *bool { return &c.LogConnections }),
		boolSetting("log_disconnections", "1", reload, func(c *Config) *bool { return &c.LogDisconnections }),
		boolSetting("log_pooler_errors", "1", reload, func(c *Config) *bool { return &c.LogPoolerErrors }),
		intSetting("verbose", "0", reload, 0, 10, func(c *Config) *int { return &c.Verbose }),
		strSetting("logfile", "", reload, func(c *Config) *string { return &c.LogFile }),
		strSetting("pidfile", "", noReload, func(c *Config) *string { return &c.PidFile }),
		intSetting("stats_period", "60", reload, 0, maxInt, func(c *Config) *int { return &c.StatsPeriod }),

		boolSetting("tcp_keepalive", "1", reload, func(c *Config) *bool { return &c.TCPKeepalive }),
		durSetting("tcp_keepidle", "0", reload, func(c *Config) *time.Duration { return &c.TCPKeepIdle }),
		durSetting("tcp_keepintvl", "0", reload, func(c *Config) *time.Duration { return &c.TCPKeepIntvl }),
		intSetting("tcp_keepcnt", "0", reload, 0, maxInt, func(c *Config) *int { return &c.TCPKeepCnt }),
	}
}

// tlsSettings returns the six client_tls_* or server_tls_* settings for one side.
func tlsSettings(prefix, defMode string, f func(c *Config) *TLSSettings) []setting {
	return []setting{
		enumSetting(prefix+"_sslmode", defMode, reload, sslModes, func(c *Config) *string { return &f(c).SSLMode }),
		strSetting(prefix+"_key_file", "", reload, func(c *Config) *string { return &f(c).KeyFile }),
		strSetting(prefix+"_cert_file", "", reload, func(c *Config) *string { return &f(c).CertFile }),
		strSetting(prefix+"_ca_file", "", reload, func(c *Config) *string { return &f(c).CAFile }),
		strSetting(prefix+"_protocols", "secure", reload, func(c *Config) *string { return &f(c).Protocols }),
		strSetting(prefix+"_ciphers", "default", reload, func(c *Config) *string { return &f(c).Ciphers }),
	}
}

func intSetting(name, def string, r bool, lo, hi int, f func(*Config) *int) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error {
			n, err := parseCInt(v, lo, hi)
			if err == nil {
				*f(c) = n
			}
			return err
		},
		show: func(c *Config) string { return strconv.Itoa(*f(c)) },
	}
}

func durSetting(name, def string, r bool, f func(*Config) *time.Duration) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error {
			d, err := parseDuration(v)
			if err == nil {
				*f(c) = d
			}
			return err
		},
		show: func(c *Config) string { return formatDuration(*f(c)) },
	}
}

func boolSetting(name, def string, r bool, f func(*Config) *bool) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error {
			b, err := parseBool(v)
			if err == nil {
				*f(c) = b
			}
			return err
		},
		show: func(c *Config) string { return formatBool(*f(c)) },
	}
}

func strSetting(name, def string, r bool, f func(*Config) *string) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error { *f(c) = v; return nil },
		show:  func(c *Config) string { return *f(c) },
	}
}

func enumSetting(name, def string, r bool, allowed []string, f func(*Config) *string) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error {
			s, err := oneOf(v, allowed...)
			if err == nil {
				*f(c) = s
			}
			return err
		},
		show: func(c *Config) string { return *f(c) },
	}
}

func listSetting(name, def string, r bool, f func(*Config) *[]string) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error { *f(c) = parseList(v); return nil },
		show:  func(c *Config) string { return strings.Join(*f(c), ",") },
	}
}

func modeSetting(name, def string, r bool, f func(*Config) *int) setting {
	return setting{name: name, def: def, reloadable: r, keep: keepOf(f),
		parse: func(c *Config, v string) error {
			m, err := parseMode(v)
			if err == nil {
				*f(c) = m
			}
			return err
		},
		show: func(c *Config) string { return fmt.Sprintf("%#o", *f(c)) },
	}
}

func listenAddrSetting() setting {
	return setting{name: "listen_addr", def: "", reloadable: noReload,
		keep: keepOf(func(c *Config) *[]string { return &c.ListenAddr }),
		parse: func(c *Config, v string) error {
			addrs, err := parseListenAddrs(v)
			if err == nil {
				c.ListenAddr = addrs
			}
			return err
		},
		show: func(c *Config) string { return strings.Join(c.ListenAddr, ",") },
	}
}

func authTypeSetting() setting {
	return setting{name: "auth_type", def: "md5", reloadable: reload,
		keep: keepOf(func(c *Config) *AuthType { return &c.AuthType }),
		parse: func(c *Config, v string) error {
			a, err := ParseAuthType(v)
			if err == nil {
				c.AuthType = a
			}
			return err
		},
		show: func(c *Config) string { return c.AuthType.String() },
	}
}

func poolModeSetting() setting {
	return setting{name: "pool_mode", def: "session", reloadable: reload,
		keep: keepOf(func(c *Config) *PoolMode { return &c.PoolMode }),
		parse: func(c *Config, v string) error {
			m, err := ParsePoolMode(v)
			if err == nil {
				c.PoolMode = m
			}
			return err
		},
		show: func(c *Config) string { return c.PoolMode.String() },
	}
}
