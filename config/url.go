package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pgmux/pgmux/protocol/startup"
)

// FromURL builds a zero-config sidecar Config from an upstream PostgreSQL URL such as
// postgres://app:secret@[fd00::1]:5432/appdb?sslmode=require (postgresql:// also works).
//
// The result has PgBouncer defaults plus:
//   - listen_addr 127.0.0.1 and ::1, loopback only (override with ApplyEnv's
//     PGMUX_LISTEN or SetListen: a sidecar reached from other machines says so);
//   - pool_mode transaction, what a sidecar pooler is for;
//   - a database named after the URL's database (default: the user name) and a "*"
//     fallback, both pointing at the URL's host and port and forcing its user and password,
//     so any database name a client asks for is served from the same server;
//   - InlineCredentials holding the URL's user and password, which clients must present.
//     auth_type is md5 (with PgBouncer's meaning: MD5, or SCRAM for a SCRAM secret; the
//     password here is plain text, so the auth layer can do either), or trust when the URL
//     has no password. The same credentials are used to log in to the server.
//
// The authority may list several hosts, as libpq's URLs do
// (postgres://u:p@h1:5432,h2:5433,[fd00::3]/db): they become the entry's host and port
// lists (a host without a port gets 5432). Query parameters sslmode, sslrootcert, sslcert
// and sslkey set server_tls_*; host (a unix socket directory, or a list) and port (one,
// or one per host) override the authority; application_name, connect_timeout,
// target_session_attrs and load_balance_hosts are honoured, and so are pgmux's
// replica_reads, replica_max_lag and replica_max_wait; options ("-c name=value ...") is
// sent to the server, its settings as startup parameters of every server login
// (Database.StartupOptions); anything else is ignored with a warning. Every part is
// decoded as libpq decodes it: %XX escapes only, a '+' stays a '+' (parseUpstreamURL).
func FromURL(raw string) (*Config, error) {
	u, err := parseUpstreamURL(raw)
	if err != nil {
		return nil, fmt.Errorf("config: upstream URL: %w", err)
	}
	user, pass := u.user, u.password
	if user == "" {
		return nil, errors.New("config: upstream URL: no user name")
	}
	db := newDatabase("")
	db.User, db.Password = user, pass
	if err := applyURLHosts(db, u.hosts); err != nil {
		return nil, fmt.Errorf("config: upstream URL: %w", err)
	}
	c := Default()
	c.ListenAddr = []string{"127.0.0.1", "::1"}
	c.PoolMode = PoolModeTransaction
	if err := applyURLQuery(c, db, u.params); err != nil {
		return nil, fmt.Errorf("config: upstream URL: %w", err)
	}
	if err := db.checkHosts(); err != nil {
		return nil, fmt.Errorf("config: upstream URL: %w", err)
	}
	name := u.dbname
	if name == "" {
		name = user
	}
	main, fallback := *db, *db
	main.Name, main.DBName = name, name
	fallback.Name, fallback.DBName = "*", "*"
	c.Databases[name], c.Databases["*"] = &main, &fallback
	c.InlineCredentials = map[string]Credential{user: {User: user, Password: pass}}
	c.AuthType = AuthMD5
	if !u.hasPassword || pass == "" {
		c.AuthType = AuthTrust
	}
	c.Path = u.redacted
	c.FromURL = true
	return c, nil
}

// ShareUpstreamPassword gives every admin_users and stats_users name that has no
// credential of its own the upstream URL's password, so the console works in zero-config
// mode (FromURL): `psql -h 127.0.0.1 -p 6432 -U admin pgbouncer` with that password. A
// Config not built by FromURL is left alone; its console users are in auth_file. Call
// it after the environment and flags have set admin_users and stats_users.
func ShareUpstreamPassword(c *Config) {
	up, ok := c.Databases["*"]
	if c.InlineCredentials == nil || !ok {
		return
	}
	for _, name := range slices.Concat(c.AdminUsers, c.StatsUsers) {
		if _, ok := c.InlineCredentials[name]; !ok {
			c.InlineCredentials[name] = Credential{User: name, Password: up.Password}
		}
	}
}

// applyURLQuery applies libpq-style query parameters.
func applyURLQuery(c *Config, db *Database, q map[string]string) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		v := q[key]
		var err error
		switch key {
		case "sslmode":
			c.ServerTLS.SSLMode, err = oneOf(v, sslModes...)
		case "sslrootcert":
			c.ServerTLS.CAFile = v
		case "sslcert":
			c.ServerTLS.CertFile = v
		case "sslkey":
			c.ServerTLS.KeyFile = v
		case "host", "port", "target_session_attrs", "load_balance_hosts",
			"replica_reads", "replica_max_lag", "replica_max_wait":
			err = dbParams[key](db, v)
		case "application_name":
			db.ApplicationName = v
		case "options":
			if err = checkURLOptions(v); err == nil {
				db.Options = v
			}
		case "connect_timeout":
			c.ServerConnectTimeout, err = parseDuration(v)
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("upstream URL: parameter %s is not supported by pgmux and is ignored", key))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// checkURLOptions checks the upstream URL's options, whose settings pgmux sends as
// startup parameters of their own (Database.StartupOptions). A name PostgreSQL reads
// there as a field of the startup packet rather than a setting (user, database, options,
// replication, a _pq_. protocol option) is refused: sent that way it would log in as
// another user or to another database, or open a replication connection, where libpq's
// options string makes PostgreSQL refuse it (unrecognized configuration parameter).
func checkURLOptions(v string) error {
	opts, err := startup.ParseOptions(v)
	if err != nil {
		return err
	}
	for _, o := range opts {
		switch {
		case o.Key == "user", o.Key == "database", o.Key == "options", o.Key == "replication",
			strings.HasPrefix(o.Key, "_pq_."):
			return fmt.Errorf("-c %s is not a setting PostgreSQL takes in options", o.Key)
		}
	}
	return nil
}
