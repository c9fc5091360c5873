package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// ignoredSettings are the PgBouncer 1.25 [pgbouncer] keys pgmux accepts and ignores (with
// a warning naming file and line), so that an existing pgbouncer.ini loads unchanged, each
// with PgBouncer's default, whether PgBouncer lets it change at run time and the kind of
// value PgBouncer parses it as. SHOW CONFIG lists them beside the keys pgmux implements,
// with the value the file gives (Config.Ignored) or that default, and that changeable:
// RELOAD takes a new value of a changeable one (it still has no effect) and keeps the old
// value of the others until a restart (KeepRestartOnly), as PgBouncer does. The admin
// console's SET stores a new value of a changeable one (SetIgnored), checked as PgBouncer
// checks it, as PgBouncer's SET does, and answers a SET of the others as PgBouncer answers
// a setting only a restart changes: accepted, with a NOTICE, and stored nowhere.
var ignoredSettings = []ignoredSetting{
	{"auth_dbname", "", reload, kindText}, {"auth_ident_file", "", reload, kindText},
	{"auth_ldap_options", "", reload, kindText}, {"client_tls13_ciphers", "", reload, kindText},
	{"client_tls_dheparams", "auto", reload, kindText}, {"client_tls_ecdhcurve", "auto", reload, kindText},
	{"conffile", "", reload, kindText}, {"disable_pqexec", "0", noReload, kindInt},
	{"dns_max_ttl", "15", reload, kindSeconds}, {"dns_nxdomain_ttl", "15", reload, kindSeconds},
	{"dns_zone_check_period", "0", reload, kindSeconds}, {"job_name", "pgbouncer", noReload, kindText},
	{"listen_backlog", "128", noReload, kindInt}, {"log_stats", "1", reload, kindInt},
	{"max_db_client_connections", "0", reload, kindInt}, {"max_user_client_connections", "0", reload, kindInt},
	{"peer_id", "0", reload, kindInt}, {"pkt_buf", "4096", noReload, kindInt},
	{"query_wait_notify", "5", reload, kindSeconds}, {"resolv_conf", "", noReload, kindText},
	{"sbuf_loopcnt", "5", reload, kindInt}, {"scram_iterations", "4096", reload, kindInt},
	{"server_fast_close", "0", reload, kindInt}, {"server_round_robin", "0", reload, kindInt},
	{"server_tls13_ciphers", "", reload, kindText}, {"so_reuseport", "0", noReload, kindInt},
	{"syslog", "0", reload, kindInt}, {"syslog_facility", "daemon", reload, kindText},
	{"syslog_ident", "pgbouncer", reload, kindText}, {"tcp_defer_accept", "1", reload, kindInt},
	{"tcp_socket_buffer", "0", reload, kindInt}, {"tcp_user_timeout", "0", reload, kindInt},
	{"unix_socket_group", "", noReload, kindText}, {"user", "", noReload, kindText},
}

// ignoredSetting is one of ignoredSettings.
type ignoredSetting struct {
	name, def string
	reload    bool
	kind      ignoredKind
}

// ignoredKind is how PgBouncer parses an ignored key's value: as text (CF_STR), an
// integer (CF_INT) or seconds (CF_TIME_USEC).
type ignoredKind int8

const (
	kindText ignoredKind = iota
	kindInt
	kindSeconds
)

// normalize checks v as PgBouncer's parser of kind k would, and returns it as PgBouncer's
// SHOW CONFIG prints it back: text as given, an integer in decimal, seconds as a number
// of seconds. pgmux's own parsers decide, as for the keys it implements (parseCInt,
// parseDuration).
func (k ignoredKind) normalize(v string) (string, error) {
	switch k {
	case kindInt:
		n, err := parseCInt(v, math.MinInt32, math.MaxInt32)
		return strconv.Itoa(n), err
	case kindSeconds:
		d, err := parseDuration(v)
		return formatDuration(d), err
	}
	return v, nil
}

// SetIgnored stores value for key, a PgBouncer key pgmux ignores that PgBouncer lets
// change at run time (SHOW CONFIG says changeable), as the admin console's SET does: the
// value is checked as PgBouncer checks it and c.Ignored, which c may share with another
// configuration, is replaced by a copy holding it. It has no effect but on SHOW CONFIG.
// A key only a restart changes is an error wrapping ErrUnsupportedSetting; any other
// key is an error too.
func SetIgnored(c *Config, key, value string) error {
	i := slices.IndexFunc(ignoredSettings, func(s ignoredSetting) bool { return s.name == key })
	switch {
	case i < 0:
		return fmt.Errorf("%s is not a PgBouncer setting pgmux ignores", key)
	case !ignoredSettings[i].reload:
		return fmt.Errorf("%w: %s cannot change at run time", ErrUnsupportedSetting, key)
	}
	v, err := ignoredSettings[i].kind.normalize(value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	m := maps.Clone(c.Ignored)
	if m == nil {
		m = make(map[string]string, 1)
	}
	m[key] = v
	c.Ignored = m
	return nil
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
