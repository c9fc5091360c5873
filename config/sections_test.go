package config

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseConnString(t *testing.T) {
	tests := []struct {
		in      string
		want    []param
		wantErr string
	}{
		{"", nil, ""},
		{"host=a port=5", []param{{"host", "a"}, {"port", "5"}}, ""},
		{"  host = a   port =5 ", []param{{"host", "a"}, {"port", "5"}}, ""},
		{"HOST=a", []param{{"HOST", "a"}}, ""}, // as written: ParseDatabase refuses it
		{`connect_query='SELECT 1`, nil, "connect_query: unterminated quoted value"},
		{`connect_query='SELECT \'x\', 2' user=u`, []param{{"connect_query", "SELECT 'x', 2"}, {"user", "u"}}, ""},
		{`password=a\ b\\c`, []param{{"password", `a b\c`}}, ""},
		{`password=''`, []param{{"password", ""}}, ""},
		{`host=`, []param{{"host", ""}}, ""},
		{"host=a,b,c", []param{{"host", "a,b,c"}}, ""},
		{"=x", nil, `expected key=value at "=x"`},
		{"host", nil, `expected key=value at "host"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseConnString(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseDatabase(t *testing.T) {
	d, warnings, err := ParseDatabase("app", `host=fd00::1 port=6000 dbname=real user=u password='p w' auth_user=au `+
		`pool_size=10 min_pool_size=2 reserve_pool_size=3 max_db_connections=40 pool_mode=transaction `+
		`client_encoding=UTF8 datestyle='ISO, MDY' timezone=UTC connect_query='SET x = 1' `+
		`application_name=api direct_pool_size=1 cache_unnamed_statements=1 load_balance_hosts=disable`)
	require.NoError(t, err)
	require.Empty(t, warnings)
	require.Equal(t, &Database{Name: "app", Host: "fd00::1", Port: 6000, DBName: "real", User: "u", Password: "p w",
		AuthUser: "au", PoolSize: 10, MinPoolSize: 2, ReservePool: 3, MaxDBConnections: 40,
		PoolMode: PoolModeTransaction, ClientEncoding: "UTF8", DateStyle: "ISO, MDY", TimeZone: "UTC",
		ConnectQuery: "SET x = 1", ApplicationName: "api", DirectPoolSize: 1, LoadBalanceHosts: "disable",
		CacheUnnamed: 1, ReplicaMaxLag: -1, ReplicaMaxWait: -1}, d)

	d, _, err = ParseDatabase("x", "")
	require.NoError(t, err)
	require.Equal(t, newDatabase("x"), d)
	require.Equal(t, "", d.Host, "empty host means the caller's unix socket default")
}

func TestDatabaseNames(t *testing.T) {
	c, _, err := loadString(t, "[databases]\n\"my db\" = host=a\n\"we\"\"ird=x\" = host=b\nmy-db = host=c\n* = host=d\n")
	require.NoError(t, err)
	require.Equal(t, "a", c.Databases["my db"].Host)
	require.Equal(t, "b", c.Databases[`we"ird=x`].Host)
	require.Equal(t, "c", c.Databases["my-db"].Host)
	require.Equal(t, "*", c.Databases["*"].Name)
	_, err = unquoteIdent(`"a"b"`)
	require.Error(t, err)
}

func TestParseUser(t *testing.T) {
	u, _, err := ParseUser("bob", "pool_mode=statement pool_size=3 reserve_pool_size=1 max_user_connections=9")
	require.NoError(t, err)
	require.Equal(t, &User{Name: "bob", PoolMode: PoolModeStatement, PoolSize: 3, ReservePoolSize: 1, MaxUserConnections: 9}, u)
	u, _, err = ParseUser("eve", "")
	require.NoError(t, err)
	require.Equal(t, newUser("eve"), u)
	_, _, err = ParseUser("eve", "pool_size=-1")
	require.EqualError(t, err, "pool_size: -1 is out of range (0..2147483647)")
}

func TestDatabaseFor(t *testing.T) {
	c := Default()
	c.Databases["app"] = &Database{Name: "app", Host: "h1", DBName: "real"}
	t.Run("exact", func(t *testing.T) {
		d, ok := c.DatabaseFor("app")
		require.True(t, ok)
		require.Equal(t, "real", d.DBName)
	})
	t.Run("no fallback", func(t *testing.T) {
		_, ok := c.DatabaseFor("other")
		require.False(t, ok)
	})
	c.Databases["*"] = func() *Database { d := newDatabase("*"); d.Host = "fb"; return d }()
	t.Run("fallback", func(t *testing.T) {
		d, ok := c.DatabaseFor("other")
		require.True(t, ok)
		require.Equal(t, "other", d.Name)
		require.Equal(t, "other", d.DBName)
		require.Equal(t, "fb", d.Host)
		require.Equal(t, "*", c.Databases["*"].Name, "fallback entry must not be modified")
	})
	t.Run("fallback with explicit dbname", func(t *testing.T) {
		c.Databases["*"].DBName = "shared"
		d, _ := c.DatabaseFor("other")
		require.Equal(t, "other", d.Name)
		require.Equal(t, "shared", d.DBName)
	})
}

func TestEffective(t *testing.T) {
	c := Default()
	c.DefaultPoolSize, c.MinPoolSize, c.ReservePoolSize = 20, 1, 2
	c.MaxDBConnections, c.MaxUserConnections, c.PoolMode = 100, 50, PoolModeSession
	dbSet := &Database{PoolSize: 10, MinPoolSize: 3, ReservePool: 4, MaxDBConnections: 30, PoolMode: PoolModeTransaction, DirectPoolSize: 1}
	dbUnset := newDatabase("u")
	c.Users["set"] = &User{Name: "set", PoolSize: 5, ReservePoolSize: 6, MaxUserConnections: 7, PoolMode: PoolModeStatement}
	c.Users["unset"] = newUser("unset")

	tests := []struct {
		db                                         *Database
		user                                       string
		size, min, reserve, maxDB, maxUser, direct int
		mode                                       PoolMode
	}{
		{nil, "nobody", 20, 1, 2, 100, 50, 5, PoolModeSession},
		{dbUnset, "unset", 20, 1, 2, 100, 50, 5, PoolModeSession},
		{dbSet, "nobody", 10, 3, 4, 30, 50, 1, PoolModeTransaction},
		{dbSet, "set", 5, 3, 6, 30, 7, 1, PoolModeStatement},
		{dbUnset, "set", 5, 1, 6, 100, 7, 5, PoolModeStatement},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			require.Equal(t, tt.size, c.EffectivePoolSize(tt.db, tt.user))
			require.Equal(t, tt.mode, c.EffectivePoolMode(tt.db, tt.user))
			require.Equal(t, tt.min, c.EffectiveMinPoolSize(tt.db))
			require.Equal(t, tt.reserve, c.EffectiveReservePool(tt.db, tt.user))
			require.Equal(t, tt.maxDB, c.EffectiveMaxDBConnections(tt.db))
			require.Equal(t, tt.maxUser, c.EffectiveMaxUserConnections(tt.user))
			require.Equal(t, tt.direct, c.EffectiveDirectPoolSize(tt.db))
		})
	}
}

// TestEffectiveCacheUnnamed: a [databases] entry's cache_unnamed_statements overrides
// the global setting either way; unset, the global one applies.
func TestEffectiveCacheUnnamed(t *testing.T) {
	c := Default()
	require.False(t, c.EffectiveCacheUnnamed(nil))
	on, off, unset := newDatabase("on"), newDatabase("off"), newDatabase("unset")
	on.CacheUnnamed, off.CacheUnnamed = 1, 0
	require.True(t, c.EffectiveCacheUnnamed(on))
	require.False(t, c.EffectiveCacheUnnamed(unset))
	c.CacheUnnamedStatements = true
	require.False(t, c.EffectiveCacheUnnamed(off))
	require.True(t, c.EffectiveCacheUnnamed(unset))
	_, _, err := ParseDatabase("x", "cache_unnamed_statements=2")
	require.Error(t, err)
}

func TestNoPasswordInOutput(t *testing.T) {
	c := Default()
	c.Databases["app"] = &Database{Name: "app", Host: "h", User: "u", Password: "hunter2"}
	c.InlineCredentials = map[string]Credential{"u": {User: "u", Password: "hunter2"}}
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%v", c.Databases), fmt.Sprintf("%+v", *c.Databases["app"]),
		fmt.Sprintf("%#v", c.Databases["app"]), fmt.Sprintf("%#v", c.InlineCredentials), fmt.Sprint(c.InlineCredentials["u"]),
	} {
		require.NotContains(t, s, "hunter2")
	}
	require.Contains(t, c.Databases["app"].String(), "password=***")
}

// TestEffectiveReplica: replica_reads, replica_max_lag and replica_max_wait come from
// [pgbouncer] unless the [databases] entry overrides them; bad values are refused.
func TestEffectiveReplica(t *testing.T) {
	c := Default()
	require.Equal(t, Replica{Reads: "off", MaxLag: 10 * time.Second, MaxWait: time.Second}, c.EffectiveReplica(nil))
	d, _, err := ParseDatabase("x", "host=a,b replica_reads=auto replica_max_lag=500 replica_max_wait=0")
	require.NoError(t, err)
	require.Equal(t, Replica{Reads: "auto", MaxLag: 500 * time.Millisecond, MaxWait: 0}, c.EffectiveReplica(d))
	u, _, err := ParseDatabase("y", "host=a,b")
	require.NoError(t, err)
	c.ReplicaReads, c.ReplicaMaxWait = "explicit", 250
	require.Equal(t, Replica{Reads: "explicit", MaxLag: 10 * time.Second, MaxWait: 250 * time.Millisecond}, c.EffectiveReplica(u))
	for _, bad := range []string{"replica_reads=on", "replica_max_lag=-1", "replica_max_wait=x"} {
		_, _, err := ParseDatabase("z", bad)
		require.Error(t, err, bad)
	}
}
