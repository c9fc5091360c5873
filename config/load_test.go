package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

func TestLoadPgBouncerSection(t *testing.T) {
	c, _, err := loadString(t, `
[pgbouncer]
listen_addr = *
listen_port = 6543
unix_socket_dir =
unix_socket_mode = 0700
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
auth_hba_file = /etc/pgbouncer/hba.conf
auth_user = pgbouncer
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1
admin_users = admin, root
stats_users = stats
pool_mode = transaction
default_pool_size = 30
min_pool_size = 2
reserve_pool_size = 3
reserve_pool_timeout = 0.5
max_client_conn = 1000
max_db_connections = 50
max_user_connections = 40
server_reset_query = DEALLOCATE ALL
server_reset_query_always = 1
server_check_query = select 1
server_check_delay = 10
server_lifetime = 1h
server_idle_timeout = 5min
server_connect_timeout = 3
server_login_retry = 500ms
query_timeout = 30s
query_wait_timeout = 0
client_idle_timeout = 7200
idle_transaction_timeout = 60
transaction_timeout = 120
client_login_timeout = 20
cancel_wait_timeout = 5
ignore_startup_parameters = extra_float_digits, options
track_extra_parameters = IntervalStyle, search_path
max_packet_size = 1048576
log_connections = 0
log_disconnections = 0
log_pooler_errors = 0
verbose = 2
logfile = /var/log/pgmux.log
pidfile = /run/pgmux.pid
tcp_keepalive = 0
tcp_keepidle = 60
tcp_keepintvl = 10
tcp_keepcnt = 5
client_tls_sslmode = require
client_tls_key_file = /k.pem
client_tls_cert_file = /c.pem
client_tls_ca_file = /ca.pem
client_tls_protocols = tlsv1.3
client_tls_ciphers = HIGH
server_tls_sslmode = verify-full
server_tls_key_file = /sk.pem
server_tls_cert_file = /sc.pem
server_tls_ca_file = /sca.pem
server_tls_protocols = all
server_tls_ciphers = normal
max_prepared_statements = 0
application_name_add_host = 1
metrics_addr = :9127
prepared_statement_mode = unnamed
direct_pool_size = 2
shutdown_timeout = 10s
`)
	require.NoError(t, err)
	require.Empty(t, c.Warnings)
	want := Default()
	want.ListenAddr = []string{"*"}
	want.ListenPort = 6543
	want.UnixSocketDir = ""
	want.UnixSocketMode = 0o700
	want.AuthType = AuthSCRAM
	want.AuthFile = "/etc/pgbouncer/userlist.txt"
	want.AuthHBAFile = "/etc/pgbouncer/hba.conf"
	want.AuthUser = "pgbouncer"
	want.AuthQuery = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
	want.AdminUsers = []string{"admin", "root"}
	want.StatsUsers = []string{"stats"}
	want.PoolMode = PoolModeTransaction
	want.DefaultPoolSize, want.MinPoolSize, want.ReservePoolSize = 30, 2, 3
	want.ReservePoolTimeout = 500 * time.Millisecond
	want.MaxClientConn, want.MaxDBConnections, want.MaxUserConnections = 1000, 50, 40
	want.ServerResetQuery, want.ServerResetQueryAlways = "DEALLOCATE ALL", true
	want.ServerCheckQuery, want.ServerCheckDelay = "select 1", 10*time.Second
	want.ServerLifetime, want.ServerIdleTimeout = time.Hour, 5*time.Minute
	want.ServerConnectTimeout, want.ServerLoginRetry = 3*time.Second, 500*time.Millisecond
	want.QueryTimeout, want.QueryWaitTimeout = 30*time.Second, 0
	want.ClientIdleTimeout, want.IdleTransactionTimeout = 2*time.Hour, time.Minute
	want.TransactionTimeout, want.ClientLoginTimeout = 2*time.Minute, 20*time.Second
	want.CancelWaitTimeout = 5 * time.Second
	want.IgnoreStartupParameters = []string{"extra_float_digits", "options"}
	want.TrackExtraParameters = []string{"IntervalStyle", "search_path"}
	want.MaxPacketSize = 1048576
	want.LogConnections, want.LogDisconnections, want.LogPoolerErrors = false, false, false
	want.Verbose, want.LogFile, want.PidFile = 2, "/var/log/pgmux.log", "/run/pgmux.pid"
	want.TCPKeepalive, want.TCPKeepIdle, want.TCPKeepIntvl, want.TCPKeepCnt = false, time.Minute, 10*time.Second, 5
	want.ClientTLS = TLSSettings{"require", "/k.pem", "/c.pem", "/ca.pem", "tlsv1.3", "HIGH"}
	want.ServerTLS = TLSSettings{"verify-full", "/sk.pem", "/sc.pem", "/sca.pem", "all", "normal"}
	want.MaxPreparedStatements, want.ApplicationNameAddHost = 0, true
	want.MetricsAddr, want.PreparedStatementMode = ":9127", "unnamed"
	want.DirectPoolSize, want.ShutdownTimeout = 2, 10*time.Second
	want.Path = c.Path
	require.Equal(t, want, c)
}

func TestLoadListenAddr(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"*", []string{"*"}},
		{"::1", []string{"::1"}},
		{"127.0.0.1,::1", []string{"127.0.0.1", "::1"}},
		{"[fd00::1], localhost", []string{"fd00::1", "localhost"}},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			c, _, err := loadString(t, "[pgbouncer]\nlisten_addr = "+tt.value+"\n")
			require.NoError(t, err)
			require.Equal(t, tt.want, c.ListenAddr)
		})
	}
}

func TestLoadQuotedValues(t *testing.T) {
	c, _, err := loadString(t, "[pgbouncer]\nserver_reset_query = \"DISCARD ALL; SELECT 1\"\nlogfile = '/var/log/x.log'\n")
	require.NoError(t, err)
	require.Equal(t, "DISCARD ALL; SELECT 1", c.ServerResetQuery)
	require.Equal(t, "/var/log/x.log", c.LogFile)
}

func TestLoadCommentsOnlyAtLineStart(t *testing.T) {
	c, _, err := loadString(t, "# hash comment\n; semicolon comment\n  ; indented\n[pgbouncer]\nserver_reset_query = SELECT 1; -- not a comment # nor this\n")
	require.NoError(t, err)
	require.Equal(t, "SELECT 1; -- not a comment # nor this", c.ServerResetQuery)
}

func TestLoadCRLF(t *testing.T) {
	c, _, err := loadString(t, "[pgbouncer]\r\nlisten_port = 7000\r\n")
	require.NoError(t, err)
	require.Equal(t, 7000, c.ListenPort)
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not an integer", "[pgbouncer]\n\nlisten_port = abc\n", `%s:3: listen_port: "abc" is not an integer`},
		{"bad bool", "[pgbouncer]\nlog_connections = maybe\n", `%s:2: log_connections: "maybe" is not a boolean (use 0 or 1)`},
		{"bad duration", "[pgbouncer]\nserver_lifetime = forever\n", `%s:2: server_lifetime: "forever" is not a duration (seconds, or a number with a unit such as 500ms, 30s, 5min, 1h)`},
		{"bad pool mode", "[pgbouncer]\npool_mode = sometimes\n", `%s:2: pool_mode: "sometimes" is not a pool mode (session, transaction or statement)`},
		{"bad auth type", "[pgbouncer]\nauth_type = pam\n", `%s:2: auth_type: auth_type pam is not supported by pgmux`},
		{"bad listen addr", "[pgbouncer]\nlisten_addr = a b\n", `%s:2: listen_addr: "a b" is not an IP address, host name or *`},
		{"bad sslmode", "[pgbouncer]\nserver_tls_sslmode = maybe\n", `%s:2: server_tls_sslmode: "maybe" is not one of disable, allow, prefer, require, verify-ca, verify-full`},
		{"no equals", "[pgbouncer]\nlisten_port\n", `%s:2: expected "key = value", got "listen_port"`},
		{"empty key", "[pgbouncer]\n= 5\n", `%s:2: missing key before '='`},
		{"before section", "listen_port = 1\n", `%s:1: listen_port: setting appears before any [section]`},
		{"bad header", "[pgbouncer\n", `%s:1: malformed section header "[pgbouncer"`},
		{"bad directive", "%includes x\n", `%s:1: unknown directive "%%includes"`},
		{"empty include", "%include\n", `%s:1: %%include: missing file name`},
		{"unknown db param", "[databases]\nfoo = host=x colour=blue\n", `%s:2: foo: unknown parameter "colour"`},
		{"bad db port", "[databases]\nfoo = port=x\n", `%s:2: foo: port: "x" is not an integer`},
		{"bad db quote", "[databases]\nfoo = connect_query='SELECT 1\n", `%s:2: foo: connect_query: unterminated quoted value`},
		{"bad db syntax", "[databases]\nfoo = host\n", `%s:2: foo: expected key=value at "host"`},
		{"reserved db", "[databases]\npgbouncer = host=x\n", `%s:2: pgbouncer: the database name "pgbouncer" is reserved for the admin console`},
		{"bad db name", "[databases]\n\"foo = host=x\n", `%s:2: expected "key = value", got "\"foo = host=x"`},
		{"unknown user param", "[users]\nbob = pool_size=1 colour=red\n", `%s:2: bob: unknown parameter "colour"`},
		{"bad user pool mode", "[users]\nbob = pool_mode=x\n", `%s:2: bob: pool_mode: "x" is not a pool mode (session, transaction or statement)`},
		// PgBouncer refuses a typo'd section or key; pgmux names the file:line and the
		// closest known name.
		{"typo section", "[pgbouncr]\nlisten_port = 1\n", `%s:1: unknown section [pgbouncr] (did you mean "pgbouncer"?)`},
		{"unknown section", "[whatever]\na = b\n", `%s:1: unknown section [whatever]`},
		{"typo key", "[pgbouncer]\nlisten_port = 1\ndefualt_pool_size = 5\n", `%s:3: defualt_pool_size: unknown setting (did you mean "default_pool_size"?)`},
		{"unknown key", "[pgbouncer]\nfrobnicate = 7\n", `%s:2: frobnicate: unknown setting`},
		{"typo unsupported key", "[pgbouncer]\nso_reuseprot = 1\n", `%s:2: so_reuseprot: unknown setting (did you mean "so_reuseport"?)`},
		{"typo db param", "[databases]\nfoo = host=x pool_szie=3\n", `%s:2: foo: unknown parameter "pool_szie" (did you mean "pool_size"?)`},
		{"typo user param", "[users]\nbob = max_user_connection=3\n", `%s:2: bob: unknown parameter "max_user_connection" (did you mean "max_user_connections"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := loadString(t, tt.content)
			require.Error(t, err)
			var le *LineError
			require.True(t, errors.As(err, &le), "want *LineError, got %T: %v", err, err)
			require.Equal(t, path, le.File)
			require.EqualError(t, err, fmt.Sprintf(tt.want, path))
		})
	}
}

// TestLoadNamesCaseSensitive: the names in a pgbouncer.ini are case-sensitive, as
// PgBouncer 1.18's are: run with Pool_Mode = session or MAX_CLIENT_CONN=10 it logs
// "unknown parameter: pgbouncer/Pool_Mode" and "cannot load config file", and so for a
// section ([PGBOUNCER]: invalid section), a connection parameter (HOST=: unrecognized
// connection parameter), a [users] parameter, and %INCLUDE (a syntax error). pgmux
// refuses each with the name to write; it took them all, in any case.
func TestLoadNamesCaseSensitive(t *testing.T) {
	inc := writeFile(t, t.TempDir(), "inc.ini", "[pgbouncer]\nlisten_port = 7000\n")
	for _, tt := range []struct{ name, content, want string }{
		{"setting", "[pgbouncer]\nPool_Mode = session\n", `%s:2: Pool_Mode: unknown setting (names are lower case: "pool_mode")`},
		{"setting, upper case", "[pgbouncer]\nMAX_CLIENT_CONN=10\n", `%s:2: MAX_CLIENT_CONN: unknown setting (names are lower case: "max_client_conn")`},
		{"section", "[PGBOUNCER]\npool_mode = session\n", `%s:1: unknown section [PGBOUNCER] (names are lower case: "pgbouncer")`},
		{"databases section", "[Databases]\nfoo = host=x\n", `%s:1: unknown section [Databases] (names are lower case: "databases")`},
		{"connection parameter", "[databases]\nfoo = HOST=x\n", `%s:2: foo: unknown parameter "HOST" (names are lower case: "host")`},
		{"database parameter", "[databases]\nfoo = host=x Pool_Mode=session\n", `%s:2: foo: unknown parameter "Pool_Mode" (names are lower case: "pool_mode")`},
		{"user parameter", "[users]\nbob = Pool_Mode=session\n", `%s:2: bob: unknown parameter "Pool_Mode" (names are lower case: "pool_mode")`},
		{"include", "%INCLUDE " + inc + "\n", `%s:1: unknown directive "%%INCLUDE"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := loadString(t, tt.content)
			require.EqualError(t, err, fmt.Sprintf(tt.want, path))
		})
	}
	// Values are not names: an enum's is taken in any case, as PgBouncer takes it.
	c, _, err := loadString(t, "[pgbouncer]\npool_mode = Transaction\n%include "+inc+"\n")
	require.NoError(t, err)
	require.Equal(t, PoolModeTransaction, c.PoolMode)
	require.Equal(t, 7000, c.ListenPort)
}

func TestLoadValidationError(t *testing.T) {
	_, path, err := loadString(t, "[pgbouncer]\nauth_type = hba\n")
	require.EqualError(t, err, path+": auth_type is hba but auth_hba_file is not set")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.ini"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestLoadWarnings(t *testing.T) {
	c, path, err := loadString(t, `[pgbouncer]
syslog = 1
log_stats = nonsense
[peers]
1 = host=/tmp/pgbouncer1
[databases]
foo = host=x server_lifetime=10
[users]
bob = max_user_client_connections=3
`)
	require.NoError(t, err)
	require.Equal(t, []string{
		path + ":2: setting syslog is not supported by pgmux and is ignored",
		path + ":3: setting log_stats is not supported by pgmux and is ignored",
		path + ":4: section [peers] is not supported by pgmux and is ignored",
		path + ":7: foo: parameter server_lifetime is not supported by pgmux and is ignored",
		path + ":9: bob: parameter max_user_client_connections is not supported by pgmux and is ignored",
	}, c.Warnings)
	require.Equal(t, "x", c.Databases["foo"].Host)
}

func TestLoadLaterValueWins(t *testing.T) {
	c, _, err := loadString(t, "[pgbouncer]\nlisten_port = 1000\n[databases]\nfoo = port=1\n[pgbouncer]\nlisten_port = 2000\n[databases]\nfoo = port=2\n")
	require.NoError(t, err)
	require.Equal(t, 2000, c.ListenPort)
	require.Equal(t, 2, c.Databases["foo"].Port)
}

func TestLoadInclude(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "conf.d/pools.ini", "[databases]\nfoo = host=db1\n%include nested/more.ini\nmin_pool_size = 2\n")
	writeFile(t, dir, "conf.d/nested/more.ini", "[pgbouncer]\ndefault_pool_size = 7\n")
	abs := writeFile(t, dir, "abs.ini", "[users]\nbob = pool_size=3\n")
	main := writeFile(t, dir, "pgbouncer.ini", "[pgbouncer]\nlisten_port = 7000\n%include conf.d/pools.ini\nmax_client_conn = 9\n%include "+abs+"\n")
	c, err := Load(main)
	require.NoError(t, err)
	require.Equal(t, 7000, c.ListenPort)
	require.Equal(t, "db1", c.Databases["foo"].Host)
	require.Equal(t, 7, c.DefaultPoolSize)
	// The section set inside an include carries on after it, as in PgBouncer.
	require.Equal(t, 9, c.MaxClientConn)
	require.NotContains(t, c.Databases, "min_pool_size")
	require.Equal(t, 2, c.MinPoolSize)
	require.Empty(t, c.Warnings)
	require.Equal(t, 3, c.Users["bob"].PoolSize)
	require.Equal(t, main, c.Path)
}

func TestLoadIncludeErrors(t *testing.T) {
	t.Run("cycle", func(t *testing.T) {
		dir := t.TempDir()
		a := writeFile(t, dir, "a.ini", "[pgbouncer]\n%include b.ini\n")
		b := writeFile(t, dir, "b.ini", "\n\n%include a.ini\n")
		_, err := Load(a)
		var le *LineError
		require.True(t, errors.As(err, &le))
		require.Equal(t, b, le.File)
		require.Equal(t, 3, le.Line)
		require.Contains(t, le.Reason, "include cycle")
	})
	t.Run("self", func(t *testing.T) {
		dir := t.TempDir()
		a := writeFile(t, dir, "a.ini", "%include a.ini\n")
		_, err := Load(a)
		require.ErrorContains(t, err, a+":1: %include: include cycle")
	})
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		a := writeFile(t, dir, "a.ini", "[pgbouncer]\n%include missing.ini\n")
		_, err := Load(a)
		require.ErrorContains(t, err, a+":2: %include: open "+filepath.Join(dir, "missing.ini"))
	})
	t.Run("error inside include names the included file", func(t *testing.T) {
		dir := t.TempDir()
		b := writeFile(t, dir, "b.ini", "listen_port = x\n")
		a := writeFile(t, dir, "a.ini", "[pgbouncer]\n%include b.ini\n")
		_, err := Load(a)
		require.EqualError(t, err, b+`:1: listen_port: "x" is not an integer`)
	})
	t.Run("same file twice is not a cycle", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "b.ini", "[users]\nbob = pool_size=1\n")
		a := writeFile(t, dir, "a.ini", "%include b.ini\n%include b.ini\n")
		_, err := Load(a)
		require.NoError(t, err)
	})
}

func TestLoadDebianStyle(t *testing.T) {
	c, err := Load("testdata/debian/pgbouncer.ini")
	require.NoError(t, err)
	require.Equal(t, []string{"localhost"}, c.ListenAddr)
	require.Equal(t, 6432, c.ListenPort)
	require.Equal(t, "/var/run/postgresql", c.UnixSocketDir)
	require.Equal(t, "/var/log/postgresql/pgbouncer.log", c.LogFile)
	require.Equal(t, "/var/run/postgresql/pgbouncer.pid", c.PidFile)
	require.Equal(t, AuthMD5, c.AuthType)
	require.Equal(t, "/etc/pgbouncer/userlist.txt", c.AuthFile)
	require.Equal(t, []string{"postgres", "dba"}, c.AdminUsers)
	require.Equal(t, []string{"stats", "monitor"}, c.StatsUsers)
	require.Equal(t, []string{"extra_float_digits"}, c.IgnoreStartupParameters)
	require.Equal(t, 500, c.MaxClientConn)
	require.Equal(t, 25, c.DefaultPoolSize)
	require.Equal(t, 5, c.ReservePoolSize)
	require.Equal(t, 3*time.Second, c.ReservePoolTimeout)
	require.Equal(t, 300*time.Second, c.ServerIdleTimeout)
	require.Len(t, c.Databases, 5)
	require.Equal(t, &Database{Name: "appdb", Port: 5432, DBName: "appdb", PoolSize: -1, MinPoolSize: -1,
		ReservePool: -1, MaxDBConnections: -1, DirectPoolSize: -1, CacheUnnamed: -1, ReplicaMaxLag: -1, ReplicaMaxWait: -1}, c.Databases["appdb"])
	require.Equal(t, "reporting", c.Databases["reports"].DBName)
	batch := c.Databases["batch"]
	require.Equal(t, "10.0.0.5", batch.Host)
	require.Equal(t, 5433, batch.Port)
	require.Equal(t, "batch", batch.User)
	require.Equal(t, "s3cret", batch.Password)
	require.Equal(t, "UNICODE", batch.ClientEncoding)
	require.Equal(t, "ISO", batch.DateStyle)
	require.Equal(t, "SELECT 1", batch.ConnectQuery)
	require.Equal(t, 50, c.Databases["bigdb"].PoolSize)
	require.Equal(t, 10, c.Databases["bigdb"].ReservePool)
	require.Equal(t, "db.internal", c.Databases["*"].Host)
	require.Equal(t, PoolModeStatement, c.Users["etl"].PoolMode)
	require.Equal(t, 4, c.Users["etl"].MaxUserConnections)
	require.Equal(t, []string{"testdata/debian/pgbouncer.ini:114: setting log_stats is not supported by pgmux and is ignored"}, c.Warnings)
}

// TestLoadSystemPgBouncerIni loads the distribution's own sample when the pgbouncer package
// is installed, to prove a stock file loads unchanged.
func TestLoadSystemPgBouncerIni(t *testing.T) {
	const path = "/etc/pgbouncer/pgbouncer.ini"
	if _, err := os.Stat(path); err != nil {
		if pgtest.InCI() {
			t.Fatalf("%s not present (install pgbouncer: scripts/deps.sh): %v", path, err)
		}
		t.Skipf("%s not present: %v", path, err)
	}
	c, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, 6432, c.ListenPort)
	require.Equal(t, AuthMD5, c.AuthType)
}
