package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/pgmux/pgmux/protocol/startup"
)

// Clone returns a deep copy of c, so a caller can Set on it and swap it in.
func (c *Config) Clone() *Config {
	n := *c
	n.ListenAddr = slices.Clone(c.ListenAddr)
	n.AdminUsers = slices.Clone(c.AdminUsers)
	n.StatsUsers = slices.Clone(c.StatsUsers)
	n.IgnoreStartupParameters = slices.Clone(c.IgnoreStartupParameters)
	n.TrackExtraParameters = slices.Clone(c.TrackExtraParameters)
	n.Warnings = slices.Clone(c.Warnings)
	n.InlineCredentials = maps.Clone(c.InlineCredentials)
	n.Ignored = maps.Clone(c.Ignored)
	n.Databases = make(map[string]*Database, len(c.Databases))
	for k, v := range c.Databases {
		d := *v
		n.Databases[k] = &d
	}
	n.Users = make(map[string]*User, len(c.Users))
	for k, v := range c.Users {
		u := *v
		n.Users[k] = &u
	}
	return &n
}

// String summarises the configuration without any password.
func (c Config) String() string {
	return fmt.Sprintf("config %s: listen %s port %d, %d databases, %d users, auth_type %s, pool_mode %s",
		c.Path, strings.Join(c.ListenAddr, ","), c.ListenPort, len(c.Databases), len(c.Users), c.AuthType, c.PoolMode)
}

// String renders the entry as a connection string, with any password shown as "***".
func (d Database) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(k + "=" + quoteConnValue(v))
		}
	}
	num := func(k string, v int) {
		if v >= 0 {
			add(k, strconv.Itoa(v))
		}
	}
	add("host", d.Host)
	if d.Ports != "" {
		add("port", d.Ports)
	} else {
		num("port", d.Port)
	}
	add("dbname", d.DBName)
	add("user", d.User)
	if d.Password != "" {
		add("password", "***")
	}
	add("auth_user", d.AuthUser)
	num("pool_size", d.PoolSize)
	num("min_pool_size", d.MinPoolSize)
	num("reserve_pool", d.ReservePool)
	num("max_db_connections", d.MaxDBConnections)
	num("direct_pool_size", d.DirectPoolSize)
	num("cache_unnamed_statements", d.CacheUnnamed)
	add("pool_mode", d.PoolMode.String())
	add("client_encoding", d.ClientEncoding)
	add("datestyle", d.DateStyle)
	add("timezone", d.TimeZone)
	add("connect_query", d.ConnectQuery)
	add("application_name", d.ApplicationName)
	add("options", d.Options)
	add("target_session_attrs", d.TargetSessionAttrs)
	add("load_balance_hosts", d.LoadBalanceHosts)
	add("replica_reads", d.ReplicaReads)
	num("replica_max_lag", d.ReplicaMaxLag)
	num("replica_max_wait", d.ReplicaMaxWait)
	return b.String()
}

// StartupOptions returns the settings of Options, each a startup parameter for the server
// (name in lower case, as PostgreSQL takes it). Sent that way rather than as one
// "options" parameter, they are the server session's startup values all the same
// (what RESET and DISCARD ALL return to), and a replication client's own options,
// passed on as the client sent them, cannot replace them. FromURL checked the string.
func (d *Database) StartupOptions() []startup.Param {
	if d.Options == "" {
		return nil
	}
	opts, _ := startup.ParseOptions(d.Options)
	return opts
}

// GoString keeps the password out of %#v output.
func (d Database) GoString() string {
	return fmt.Sprintf("&config.Database{Name:%q, %s}", d.Name, d.String())
}

// String renders the entry in [users] syntax.
func (u User) String() string {
	var parts []string
	if u.PoolMode != PoolModeUnset {
		parts = append(parts, "pool_mode="+u.PoolMode.String())
	}
	for _, f := range []struct {
		k string
		v int
	}{{"pool_size", u.PoolSize}, {"reserve_pool_size", u.ReservePoolSize}, {"max_user_connections", u.MaxUserConnections}} {
		if f.v >= 0 {
			parts = append(parts, f.k+"="+strconv.Itoa(f.v))
		}
	}
	return strings.Join(parts, " ")
}
