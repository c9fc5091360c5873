package config

import (
	"errors"
	"fmt"
)

// dbParams is the [databases] connection-string table.
var dbParams = map[string]func(d *Database, v string) error{
	"host":                     parseHosts,
	"port":                     parsePorts,
	"dbname":                   func(d *Database, v string) error { d.DBName = v; return nil },
	"user":                     func(d *Database, v string) error { d.User = v; return nil },
	"password":                 func(d *Database, v string) error { d.Password = v; return nil },
	"auth_user":                func(d *Database, v string) error { d.AuthUser = v; return nil },
	"pool_size":                dbInt(0, maxInt, func(d *Database) *int { return &d.PoolSize }),
	"min_pool_size":            dbInt(0, maxInt, func(d *Database) *int { return &d.MinPoolSize }),
	"reserve_pool":             dbInt(0, maxInt, func(d *Database) *int { return &d.ReservePool }),
	"reserve_pool_size":        dbInt(0, maxInt, func(d *Database) *int { return &d.ReservePool }),
	"max_db_connections":       dbInt(0, maxInt, func(d *Database) *int { return &d.MaxDBConnections }),
	"direct_pool_size":         dbInt(0, maxInt, func(d *Database) *int { return &d.DirectPoolSize }),
	"pool_mode":                func(d *Database, v string) (err error) { d.PoolMode, err = ParsePoolMode(v); return err },
	"cache_unnamed_statements": dbInt(0, 1, func(d *Database) *int { return &d.CacheUnnamed }),
	"client_encoding":          func(d *Database, v string) error { d.ClientEncoding = v; return nil },
	"datestyle":                func(d *Database, v string) error { d.DateStyle = v; return nil },
	"timezone":                 func(d *Database, v string) error { d.TimeZone = v; return nil },
	"connect_query":            func(d *Database, v string) error { d.ConnectQuery = v; return nil },
	"application_name":         func(d *Database, v string) error { d.ApplicationName = v; return nil },
	// Several hosts per database (hosts.go).
	"target_session_attrs": dbEnum(TargetSessionAttrs, func(d *Database) *string { return &d.TargetSessionAttrs }),
	"load_balance_hosts":   dbEnum(LoadBalanceHosts, func(d *Database) *string { return &d.LoadBalanceHosts }),
	// Reads on standbys (replica.go).
	"replica_reads":    dbEnum(ReplicaReadsModes, func(d *Database) *string { return &d.ReplicaReads }),
	"replica_max_lag":  dbInt(0, maxInt, func(d *Database) *int { return &d.ReplicaMaxLag }),
	"replica_max_wait": dbInt(0, maxInt, func(d *Database) *int { return &d.ReplicaMaxWait }),
}

// userParams is the [users] table.
var userParams = map[string]func(u *User, v string) error{
	"pool_mode":            func(u *User, v string) (err error) { u.PoolMode, err = ParsePoolMode(v); return err },
	"pool_size":            userInt(func(u *User) *int { return &u.PoolSize }),
	"reserve_pool_size":    userInt(func(u *User) *int { return &u.ReservePoolSize }),
	"max_user_connections": userInt(func(u *User) *int { return &u.MaxUserConnections }),
}

func dbInt(lo, hi int, f func(*Database) *int) func(*Database, string) error {
	return func(d *Database, v string) error {
		n, err := parseInt(v, lo, hi)
		if err == nil {
			*f(d) = n
		}
		return err
	}
}

func userInt(f func(*User) *int) func(*User, string) error {
	return func(u *User, v string) error {
		n, err := parseInt(v, 0, maxInt)
		if err == nil {
			*f(u) = n
		}
		return err
	}
}

// newDatabase returns an entry with every inheritable field unset.
func newDatabase(name string) *Database {
	return &Database{Name: name, Port: 5432, DBName: name, PoolSize: -1, MinPoolSize: -1,
		ReservePool: -1, MaxDBConnections: -1, DirectPoolSize: -1, CacheUnnamed: -1,
		ReplicaMaxLag: -1, ReplicaMaxWait: -1}
}

// newUser returns an entry with every inheritable field unset.
func newUser(name string) *User {
	return &User{Name: name, PoolSize: -1, MaxUserConnections: -1, ReservePoolSize: -1}
}

// ParseDatabase parses one [databases] value, e.g. "host=db1 port=5433 pool_size=10".
// Parameters pgmux ignores are returned as warnings; an unknown parameter is an error.
func ParseDatabase(name, connstr string) (*Database, []string, error) {
	params, err := parseConnString(connstr)
	if err != nil {
		return nil, nil, err
	}
	d := newDatabase(name)
	var warnings []string
	for _, p := range params {
		set, ok := dbParams[p.key]
		switch {
		case ok:
			if err := set(d, p.value); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.key, err)
			}
		case unsupportedDatabaseParams[p.key]:
			warnings = append(warnings, fmt.Sprintf("parameter %s is not supported by pgmux and is ignored", p.key))
		default:
			return nil, nil, fmt.Errorf("unknown parameter %q%s", p.key, didYouMean(p.key, paramNames(dbParams, unsupportedDatabaseParams)))
		}
	}
	if d.DBName == "" {
		d.DBName = name
	}
	if err := d.checkHosts(); err != nil {
		return nil, nil, err
	}
	return d, warnings, nil
}

// ParseUser parses one [users] value, e.g. "pool_mode=transaction max_user_connections=10".
func ParseUser(name, settings string) (*User, []string, error) {
	params, err := parseConnString(settings)
	if err != nil {
		return nil, nil, err
	}
	u := newUser(name)
	var warnings []string
	for _, p := range params {
		set, ok := userParams[p.key]
		switch {
		case ok:
			if err := set(u, p.value); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.key, err)
			}
		case unsupportedUserParams[p.key]:
			warnings = append(warnings, fmt.Sprintf("parameter %s is not supported by pgmux and is ignored", p.key))
		default:
			return nil, nil, fmt.Errorf("unknown parameter %q%s", p.key, didYouMean(p.key, paramNames(userParams, unsupportedUserParams)))
		}
	}
	return u, warnings, nil
}

// database handles one [databases] line.
func (l *loader) database(file string, line int, key, value string) error {
	name, err := unquoteIdent(key)
	if err == nil && name == "pgbouncer" {
		err = errors.New(`the database name "pgbouncer" is reserved for the admin console`)
	}
	if err == nil && name == "" {
		err = errors.New("empty database name")
	}
	if err != nil {
		return lineErr(file, line, key, err)
	}
	d, warnings, err := ParseDatabase(name, value)
	if err != nil {
		return lineErr(file, line, name, err)
	}
	for _, w := range warnings {
		l.warn(file, line, "%s: %s", name, w)
	}
	l.c.Databases[name] = d
	return nil
}

// user handles one [users] line.
func (l *loader) user(file string, line int, key, value string) error {
	name, err := unquoteIdent(key)
	if err == nil && name == "" {
		err = errors.New("empty user name")
	}
	if err != nil {
		return lineErr(file, line, key, err)
	}
	u, warnings, err := ParseUser(name, value)
	if err != nil {
		return lineErr(file, line, name, err)
	}
	for _, w := range warnings {
		l.warn(file, line, "%s: %s", name, w)
	}
	l.c.Users[name] = u
	return nil
}
