package config

// ignoredSettings are the PgBouncer 1.25 [pgbouncer] keys pgmux accepts and ignores (with
// a warning naming file and line), so that an existing pgbouncer.ini loads unchanged, each
// with PgBouncer's default. SHOW CONFIG lists them beside the keys pgmux implements, with
// the value the file gives (Config.Ignored) or that default, as not changeable.
var ignoredSettings = []struct{ name, def string }{
	{"auth_dbname", ""}, {"auth_ident_file", ""}, {"auth_ldap_options", ""},
	{"client_tls13_ciphers", ""}, {"client_tls_dheparams", "auto"}, {"client_tls_ecdhcurve", "auto"},
	{"conffile", ""}, {"disable_pqexec", "0"}, {"dns_max_ttl", "15"}, {"dns_nxdomain_ttl", "15"},
	{"dns_zone_check_period", "0"}, {"job_name", "pgbouncer"}, {"listen_backlog", "128"},
	{"log_stats", "1"}, {"max_db_client_connections", "0"}, {"max_user_client_connections", "0"},
	{"peer_id", "0"}, {"pkt_buf", "4096"}, {"query_wait_notify", "5"}, {"resolv_conf", ""},
	{"sbuf_loopcnt", "5"}, {"scram_iterations", "4096"}, {"server_fast_close", "0"},
	{"server_round_robin", "0"}, {"server_tls13_ciphers", ""}, {"so_reuseport", "0"},
	{"stats_period", "60"}, {"syslog", "0"}, {"syslog_facility", "daemon"},
	{"syslog_ident", "pgbouncer"}, {"tcp_defer_accept", "1"}, {"tcp_socket_buffer", "0"},
	{"tcp_user_timeout", "0"}, {"unix_socket_group", ""}, {"user", ""},
}

// unsupportedSettings holds the names of ignoredSettings, and service_name (PgBouncer's
// alias of job_name, known on Windows only: SHOW CONFIG does not list it). Read-only after
// initialisation.
var unsupportedSettings = func() map[string]bool {
	m := map[string]bool{"service_name": true}
	for _, s := range ignoredSettings {
		m[s.name] = true
	}
	return m
}()

// unsupportedDatabaseParams are PgBouncer [databases] connection-string keys pgmux ignores
// with a warning.
var unsupportedDatabaseParams = map[string]bool{
	"auth_query": true, "auth_dbname": true,
	"max_db_client_connections": true, "server_lifetime": true,
	"query_wait_timeout": true,
}

// unsupportedUserParams are PgBouncer [users] keys pgmux ignores with a warning.
var unsupportedUserParams = map[string]bool{
	"max_user_client_connections": true, "query_timeout": true, "query_wait_timeout": true,
	"idle_transaction_timeout": true, "transaction_timeout": true, "client_idle_timeout": true,
}
