package config

import "time"

// DatabaseFor finds the [databases] entry for a client-requested name: the exact entry, or
// else a copy of the "*" fallback with Name set to name and, unless the fallback named a
// dbname explicitly, DBName set to name too. The result must be treated as read-only.
// The admin console name "pgbouncer" is not special here; callers route it first.
func (c *Config) DatabaseFor(name string) (*Database, bool) {
	if db, ok := c.Databases[name]; ok {
		return db, true
	}
	fb, ok := c.Databases["*"]
	if !ok {
		return nil, false
	}
	db := *fb
	db.Name = name
	if db.DBName == "*" || db.DBName == "" {
		db.DBName = name
	}
	return &db, true
}

// user returns the [users] entry for name, or nil.
func (c *Config) user(name string) *User {
	return c.Users[name]
}

// EffectivePoolSize is the pool size for (db, user): the user's pool_size, else the
// database's, else default_pool_size. db may be nil.
func (c *Config) EffectivePoolSize(db *Database, user string) int {
	if u := c.user(user); u != nil && u.PoolSize >= 0 {
		return u.PoolSize
	}
	if db != nil && db.PoolSize >= 0 {
		return db.PoolSize
	}
	return c.DefaultPoolSize
}

// EffectivePoolMode is the pool mode for (db, user): the user's pool_mode, else the
// database's, else pool_mode. db may be nil.
func (c *Config) EffectivePoolMode(db *Database, user string) PoolMode {
	if u := c.user(user); u != nil && u.PoolMode != PoolModeUnset {
		return u.PoolMode
	}
	if db != nil && db.PoolMode != PoolModeUnset {
		return db.PoolMode
	}
	return c.PoolMode
}

// EffectiveMinPoolSize is the database's min_pool_size, else min_pool_size. db may be nil.
func (c *Config) EffectiveMinPoolSize(db *Database) int {
	if db != nil && db.MinPoolSize >= 0 {
		return db.MinPoolSize
	}
	return c.MinPoolSize
}

// EffectiveReservePool is the reserve pool size for (db, user): the user's
// reserve_pool_size, else the database's reserve_pool, else reserve_pool_size.
func (c *Config) EffectiveReservePool(db *Database, user string) int {
	if u := c.user(user); u != nil && u.ReservePoolSize >= 0 {
		return u.ReservePoolSize
	}
	if db != nil && db.ReservePool >= 0 {
		return db.ReservePool
	}
	return c.ReservePoolSize
}

// EffectiveMaxDBConnections is the database's max_db_connections, else the global one;
// 0 means unlimited. db may be nil.
func (c *Config) EffectiveMaxDBConnections(db *Database) int {
	if db != nil && db.MaxDBConnections >= 0 {
		return db.MaxDBConnections
	}
	return c.MaxDBConnections
}

// EffectiveMaxUserConnections is the user's max_user_connections, else the global one;
// 0 means unlimited.
func (c *Config) EffectiveMaxUserConnections(user string) int {
	if u := c.user(user); u != nil && u.MaxUserConnections >= 0 {
		return u.MaxUserConnections
	}
	return c.MaxUserConnections
}

// EffectiveDirectPoolSize is the database's direct_pool_size, else the global one.
func (c *Config) EffectiveDirectPoolSize(db *Database) int {
	if db != nil && db.DirectPoolSize >= 0 {
		return db.DirectPoolSize
	}
	return c.DirectPoolSize
}

// EffectiveCacheUnnamed is the database's cache_unnamed_statements, else the global one.
func (c *Config) EffectiveCacheUnnamed(db *Database) bool {
	if db != nil && db.CacheUnnamed >= 0 {
		return db.CacheUnnamed == 1
	}
	return c.CacheUnnamedStatements
}

// ReplicaReadsModes are replica_reads' values.
var ReplicaReadsModes = []string{"off", "explicit", "auto"}

// Replica is what a database's clients may read from standbys, with its overrides of
// the [pgbouncer] values applied.
type Replica struct {
	Reads   string        // off, explicit or auto
	MaxLag  time.Duration // replica_max_lag: a standby lagging more is skipped; 0 = no limit
	MaxWait time.Duration // replica_max_wait: longest read-your-writes wait; 0 = no waiting (off)
}

// EffectiveReplica is the database's replica_reads, replica_max_lag and replica_max_wait.
func (c *Config) EffectiveReplica(db *Database) Replica {
	r := Replica{Reads: c.ReplicaReads, MaxLag: time.Duration(c.ReplicaMaxLag) * time.Millisecond,
		MaxWait: time.Duration(c.ReplicaMaxWait) * time.Millisecond}
	if db == nil {
		return r
	}
	if db.ReplicaReads != "" {
		r.Reads = db.ReplicaReads
	}
	if db.ReplicaMaxLag >= 0 {
		r.MaxLag = time.Duration(db.ReplicaMaxLag) * time.Millisecond
	}
	if db.ReplicaMaxWait >= 0 {
		r.MaxWait = time.Duration(db.ReplicaMaxWait) * time.Millisecond
	}
	if r.Reads == "" {
		r.Reads = "off"
	}
	return r
}
