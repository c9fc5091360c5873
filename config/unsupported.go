package config

// ignoredSettings are the PgBouncer 1.25 [pgbouncer] keys pgmux accepts and ignores (with
// a warning naming file and line), so that an existing pgbouncer.ini loads unchanged, each
// with PgBouncer's default and whether PgBouncer lets it change at run time. SHOW CONFIG
// lists them beside the keys pgmux implements, with the value the file gives
// (Config.Ignored) or that default, and that changeable: RELOAD takes a new value of a
// changeable one (it still has no effect) and keeps the old value of the others until a
// restart (KeepRestartOnly), as PgBouncer does. The admin console's SET refuses a
// changeable one, as having no effect, and answers a SET of the others as PgBouncer answers
// a setting only a restart changes: accepted, with a NOTICE, and stored nowhere.
var ignoredSettings = []struct {
	name, def string
	reload    bool
}{
	{"auth_dbname", "", reload}, {"auth_ident_file", "", reload}, {"auth_ldap_options", "", reload},
	{"client_tls13_ciphers", "", reload}, {"client_tls_dheparams", "auto", reload},
	{"client_tls_ecdhcurve", "auto", reload}, {"conffile", "", reload}, {"disable_pqexec", "0", noReload},
	{"dns_max_ttl", "15", reload}, {"dns_nxdomain_ttl", "15", reload}, {"dns_zone_check_period", "0", reload},
	{"job_name", "pgbouncer", noReload}, {"listen_backlog", "128", noReload}, {"log_stats", "1", reload},
	{"max_db_client_connections", "0", reload}, {"max_user_client_connections", "0", reload},
	{"peer_id", "0", reload}, {"pkt_buf", "4096", noReload}, {"query_wait_notify", "5", reload},
	{"resolv_conf", "", noReload}, {"sbuf_loopcnt", "5", reload}, {"scram_iterations", "4096", reload},
	{"server_fast_close", "0", reload}, {"server_round_robin", "0", reload},
	{"server_tls13_ciphers", "", reload}, {"so_reuseport", "0", noReload}, {"stats_period", "60", reload},
	{"syslog", "0", reload}, {"syslog_facility", "daemon", reload}, {"syslog_ident", "pgbouncer", reload},
	{"tcp_defer_accept", "1", reload}, {"tcp_socket_buffer", "0", reload}, {"tcp_user_timeout", "0", reload},
	{"unix_socket_group", "", noReload}, {"user", "", noReload},
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
