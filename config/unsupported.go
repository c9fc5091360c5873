package config

// unsupportedSettings are PgBouncer 1.25 [pgbouncer] keys that pgmux accepts and ignores
// with a warning, so an existing pgbouncer.ini loads unchanged.
var unsupportedSettings = map[string]bool{
	"auth_dbname": true, "auth_ident_file": true, "auth_ldap_options": true,
	"client_tls13_ciphers": true, "client_tls_dheparams": true,
	"client_tls_ecdhcurve": true, "conffile": true, "disable_pqexec": true,
	"dns_max_ttl": true, "dns_nxdomain_ttl": true, "dns_zone_check_period": true,
	"job_name": true, "service_name": true, "listen_backlog": true, "log_stats": true,
	"max_db_client_connections": true, "max_user_client_connections": true, "peer_id": true,
	"pkt_buf": true, "query_wait_notify": true, "resolv_conf": true, "sbuf_loopcnt": true,
	"scram_iterations": true, "server_fast_close": true, "server_round_robin": true,
	"server_tls13_ciphers": true, "so_reuseport": true, "stats_period": true,
	"suspend_timeout": true, "syslog": true, "syslog_facility": true, "syslog_ident": true,
	"tcp_defer_accept": true, "tcp_socket_buffer": true, "tcp_user_timeout": true,
	"unix_socket_group": true, "user": true,
}

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
