package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/protocol/startup"
)

func TestFromURL(t *testing.T) {
	tests := []struct {
		url                  string
		host, db, user, pass string
		port                 int
		auth                 AuthType
	}{
		{"postgres://app:secret@db.internal:5433/appdb", "db.internal", "appdb", "app", "secret", 5433, AuthMD5},
		{"postgresql://app:secret@app-db.internal/appdb", "app-db.internal", "appdb", "app", "secret", 5432, AuthMD5},
		{"postgres://app:s%40cr%3At@[fd00::1]:6000/appdb", "fd00::1", "appdb", "app", "s@cr:t", 6000, AuthMD5},
		{"postgres://app:pw@[::1]/appdb", "::1", "appdb", "app", "pw", 5432, AuthMD5},
		{"postgres://app@10.0.0.1", "10.0.0.1", "app", "app", "", 5432, AuthTrust},
		{"postgres://app:pw@/appdb?host=/var/run/postgresql", "/var/run/postgresql", "appdb", "app", "pw", 5432, AuthMD5},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := FromURL(tt.url)
			require.NoError(t, err)
			require.Equal(t, tt.auth, c.AuthType)
			require.Equal(t, []string{"127.0.0.1", "::1"}, c.ListenAddr, "loopback only")
			require.Equal(t, PoolModeTransaction, c.PoolMode)
			require.Equal(t, 6432, c.ListenPort)
			require.Len(t, c.Databases, 2)
			d := c.Databases[tt.db]
			require.NotNil(t, d, "database %q", tt.db)
			require.Equal(t, tt.db, d.Name)
			require.Equal(t, tt.db, d.DBName)
			require.Equal(t, tt.host, d.Host)
			require.Equal(t, tt.port, d.Port)
			require.Equal(t, tt.user, d.User)
			require.Equal(t, tt.pass, d.Password)
			require.Equal(t, -1, d.PoolSize)
			other, ok := c.DatabaseFor("anything")
			require.True(t, ok)
			require.Equal(t, "anything", other.DBName)
			require.Equal(t, tt.host, other.Host)
			require.Equal(t, tt.user, other.User)
			require.Equal(t, map[string]Credential{tt.user: {User: tt.user, Password: tt.pass}}, c.Credentials())
			if tt.pass != "" {
				require.NotContains(t, c.Path, tt.pass)
			}
			require.NoError(t, c.Validate())
		})
	}
}

func TestFromURLQuery(t *testing.T) {
	c, err := FromURL("postgres://u:p@h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem&application_name=side&connect_timeout=4&port=6001&keepalives=1" +
		"&options=-c%20search_path%3Dapp,public%20--statement-timeout%3D5s%20-capplication_name%3Dother")
	require.NoError(t, err)
	require.Equal(t, TLSSettings{SSLMode: "verify-full", CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", Protocols: "secure", Ciphers: "default"}, c.ServerTLS)
	require.Equal(t, "side", c.Databases["d"].ApplicationName)
	require.Equal(t, 6001, c.Databases["d"].Port)
	require.Equal(t, 4*time.Second, c.ServerConnectTimeout)
	require.Equal(t, []string{"upstream URL: parameter keepalives is not supported by pgmux and is ignored"}, c.Warnings)
	// options: for the server, each setting of every database's logins (the "*" fallback's
	// too), as PostgreSQL reads options (lower case, '-' as '_').
	for _, name := range []string{"d", "*"} {
		d := c.Databases[name]
		require.Equal(t, "-c search_path=app,public --statement-timeout=5s -capplication_name=other", d.Options)
		require.Equal(t, []startup.Param{{Key: "search_path", Value: "app,public"}, {Key: "statement_timeout", Value: "5s"},
			{Key: "application_name", Value: "other"}}, d.StartupOptions())
		require.Contains(t, d.String(), `options='-c search_path=app,public --statement-timeout=5s -capplication_name=other'`)
	}
	d, err := FromURL("postgres://u:p@h/d")
	require.NoError(t, err)
	require.Nil(t, d.Databases["d"].StartupOptions())
}

func TestFromURLErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"mysql://u:p@h/d", `config: upstream URL: scheme "mysql" is not postgres or postgresql`},
		{"postgres://h/d", "config: upstream URL: no user name"},
		{"postgres://u:p@h:notaport/d", `config: upstream URL: port: "notaport" is not an integer`},
		{"postgres://u:p@h:70000/d", "config: upstream URL: port: 70000 is out of range (1..65535)"},
		{"postgres://u:p@h/d?sslmode=sometimes", `config: upstream URL: sslmode: "sometimes" is not one of disable, allow, prefer, require, verify-ca, verify-full`},
		{"postgres://u:p@h/d?options=-e", `config: upstream URL: options: unsupported startup option "-e" (only -c key=value is supported)`},
		{"postgres://u:p@h/d?options=-c%20search_path", `config: upstream URL: options: invalid startup option "search_path": expected key=value`},
		// Startup packet fields, not settings: PostgreSQL refuses them in options.
		{"postgres://u:p@h/d?options=-c%20user%3Dpostgres", `config: upstream URL: options: -c user is not a setting PostgreSQL takes in options`},
		{"postgres://u:p@h/d?options=--Database%3Dother", `config: upstream URL: options: -c database is not a setting PostgreSQL takes in options`},
		{"postgres://u:p@h/d?options=-c%20replication%3Dtrue", `config: upstream URL: options: -c replication is not a setting PostgreSQL takes in options`},
		{"postgres://u:p@h/d?options=-c%20_pq_.x%3D1", `config: upstream URL: options: -c _pq_.x is not a setting PostgreSQL takes in options`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := FromURL(tt.url)
			require.EqualError(t, err, tt.want)
			require.NotContains(t, err.Error(), ":p@")
		})
	}
}

func TestShareUpstreamPassword(t *testing.T) {
	c, err := FromURL("postgres://app:pw@db/app")
	require.NoError(t, err)
	require.NoError(t, Set(c, "admin_users", "admin, app"))
	require.NoError(t, Set(c, "stats_users", "watch"))
	ShareUpstreamPassword(c)
	require.Equal(t, map[string]Credential{
		"app":   {User: "app", Password: "pw"},
		"admin": {User: "admin", Password: "pw"},
		"watch": {User: "watch", Password: "pw"},
	}, c.Credentials())

	// An ini-file configuration keeps its console users in auth_file.
	ini := Default()
	require.NoError(t, Set(ini, "admin_users", "admin"))
	ShareUpstreamPassword(ini)
	require.Nil(t, ini.Credentials())
}

// TestFromURLHosts: libpq's multi-host URLs give the entry a host list, each host with its
// own port, and target_session_attrs / load_balance_hosts from the query, as an ini entry
// host=h1,h2 port=p1,p2 would.
func TestFromURLHosts(t *testing.T) {
	tests := []struct {
		url  string
		want []Endpoint
		tsa  string
	}{
		{"postgres://app:pw@n1.vm.db.internal:5433,n2.vm.db.internal:5433/app?target_session_attrs=read-write",
			[]Endpoint{{"n1.vm.db.internal", 5433}, {"n2.vm.db.internal", 5433}}, "read-write"},
		{"postgres://app:pw@10.0.0.1:5432,[fd00::2]:5433,[fd00::3]/app",
			[]Endpoint{{"10.0.0.1", 5432}, {"fd00::2", 5433}, {"fd00::3", 5432}}, "any"},
		{"postgresql://app:pw@h1,h2/app?port=6000", []Endpoint{{"h1", 6000}, {"h2", 6000}}, "any"},
		{"postgres://app:pw@h1,h2/app", []Endpoint{{"h1", 5432}, {"h2", 5432}}, "any"},
		{"postgres://app:pw@/app?host=h1,h2&port=5433,5434&target_session_attrs=prefer-standby",
			[]Endpoint{{"h1", 5433}, {"h2", 5434}}, "prefer-standby"},
		{"postgres://app:pw@db.internal:5433/app", []Endpoint{{"db.internal", 5433}}, "any"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := FromURL(tt.url)
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			for _, name := range []string{"app", "*"} {
				d := c.Databases[name]
				require.Equal(t, tt.want, d.Endpoints(), name)
				require.Equal(t, tt.tsa, d.EffectiveTargetSessionAttrs(), name)
				require.Equal(t, "app", d.User)
				require.Equal(t, "pw", d.Password)
			}
			require.Empty(t, c.Warnings)
		})
	}
	c, err := FromURL("postgres://app:pw@h1:5432,h2:5432/app?load_balance_hosts=disable&replica_reads=auto&replica_max_wait=0")
	require.NoError(t, err)
	d := c.Databases["app"]
	require.Equal(t, "disable", d.EffectiveLoadBalanceHosts())
	require.Equal(t, "auto", d.ReplicaReads)
	require.Equal(t, 0, d.ReplicaMaxWait)

	for _, bad := range []struct{ url, want string }{
		{"postgres://u:p@h1,,h2/d", `config: upstream URL: host 2 of "h1,,h2": empty host`},
		{"postgres://u:p@h1:5432,fd00::1:5432/d", `config: upstream URL: host 2 of "h1:5432,fd00::1:5432": an IPv6 address must be in brackets`},
		{"postgres://u:p@h1,[fd00::1/d", `config: upstream URL: host 2 of "h1,[fd00::1": missing ']' after an IPv6 address`},
		{"postgres://u:p@h1:99999,h2/d", `config: upstream URL: host 1 of "h1:99999,h2": port: 99999 is out of range (1..65535)`},
		{"postgres://u:p@h1,h2/d?port=1,2,3", "config: upstream URL: port lists 3 ports for 2 hosts: give one port for all, or one per host"},
		{"postgres://u:p@h1,h2/d?target_session_attrs=primary-ish", `config: upstream URL: target_session_attrs: "primary-ish" is not one of any, read-write, read-only, primary, standby, prefer-standby`},
	} {
		_, err := FromURL(bad.url)
		require.EqualError(t, err, bad.want, bad.url)
	}
}

// TestFromURLDecodesAsLibpq: every part of the URL is decoded as libpq decodes it, %XX
// only, so a '+' reaches the server as '+'. net/url's query decoding read it as a space:
// options=-c search_path=a+b set search_path to "a b".
func TestFromURLDecodesAsLibpq(t *testing.T) {
	tests := []struct {
		name, url            string
		user, pass, db, opts string
		app                  string
	}{
		{"user", "postgres://a+b:pw@h/d", "a+b", "pw", "d", "", ""},
		{"password", "postgres://app:a+b@h/d", "app", "a+b", "d", "", ""},
		{"dbname", "postgres://app:pw@h/d+b", "app", "pw", "d+b", "", ""},
		{"options", "postgres://app:pw@h/d?options=-c%20search_path%3Da+b", "app", "pw", "d", "-c search_path=a+b", ""},
		{"application_name", "postgres://app:pw@h/d?application_name=x+y", "app", "pw", "d", "", "x+y"},
		{"escapes", "postgres://a%2Bb:p%20w%40@h/d%2Bb?application_name=x%2By%20z", "a+b", "p w@", "d+b", "", "x+y z"},
		{"password to the first @", "postgres://app:p+w:q@h/d", "app", "p+w:q", "d", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromURL(tt.url)
			require.NoError(t, err)
			d := c.Databases[tt.db]
			require.NotNil(t, d, "database %q in %v", tt.db, c.Databases)
			require.Equal(t, tt.db, d.DBName)
			require.Equal(t, tt.user, d.User)
			require.Equal(t, tt.pass, d.Password)
			require.Equal(t, tt.opts, d.Options)
			require.Equal(t, tt.app, d.ApplicationName)
			require.Equal(t, map[string]Credential{tt.user: {User: tt.user, Password: tt.pass}}, c.Credentials())
			require.NotContains(t, c.Path, tt.pass)
		})
	}
	bad := []struct{ url, want string }{
		{"postgres://a%zzb:pw@h/d", `config: upstream URL: user name: invalid escape "%zz": a '%' must start %XX`},
		{"postgres://app:se%zzcret@h/d", "config: upstream URL: password: a '%' must start a %XX escape, and %00 is not allowed"},
		{"postgres://app:se%00cret@h/d", "config: upstream URL: password: a '%' must start a %XX escape, and %00 is not allowed"},
		{"postgres://app:pw@h/d%4", `config: upstream URL: database name: invalid escape "%4": a '%' must start %XX`},
		{"postgres://app:pw@h/d?options=%zz", `config: upstream URL: options: invalid escape "%zz": a '%' must start %XX`},
		{"postgres://app:pw@h/d?application_name=a%00", "config: upstream URL: application_name: %00 is not allowed"},
		{"postgres://app:pw@h/d?sslmode", `config: upstream URL: query parameter "sslmode" has no '='`},
		{"postgres://app:pw@h/d?options=-c%20a=b", "config: upstream URL: query parameter options has a second '=' (write it %3D)"},
	}
	for _, tt := range bad {
		_, err := FromURL(tt.url)
		require.EqualError(t, err, tt.want, tt.url)
		require.NotContains(t, err.Error(), "cret")
	}
}
