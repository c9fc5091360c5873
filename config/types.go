// Package config owns pgmux's configuration: the pgbouncer.ini format (with %include),
// userlist.txt, the zero-config upstream URL and environment, validation and diffing for
// reload. It knows nothing of sockets, pools or clients.
package config

import "time"

// PoolMode says when a server connection goes back to its pool. A byte: every client's
// Session holds one (proxy's TestSessionSizeBounded).
type PoolMode uint8

const (
	PoolModeUnset       PoolMode = iota // inherit from the level above
	PoolModeSession                     // held for the client's whole session
	PoolModeTransaction                 // held until ReadyForQuery 'I'
	PoolModeStatement                   // held for one statement (no multi-statement transactions)
)

// AuthType is the client authentication method (auth_type).
type AuthType int

const (
	AuthTrust AuthType = iota
	AuthPlain
	AuthMD5
	AuthSCRAM
	AuthAny  // like trust, and the username is taken from the database entry
	AuthCert // TLS client certificate
	AuthHBA  // auth_hba_file decides
)

// Config is one complete, validated configuration. Values are already defaulted.
type Config struct {
	// [pgbouncer] section.
	ListenAddr     []string // from listen_addr, split on commas; "*" means all; empty = no TCP
	ListenPort     int
	UnixSocketDir  string // "" disables the unix socket
	UnixSocketMode int
	AuthType       AuthType
	AuthFile       string
	AuthHBAFile    string
	AuthUser       string
	AuthQuery      string
	AdminUsers     []string
	StatsUsers     []string

	PoolMode           PoolMode
	DefaultPoolSize    int
	MinPoolSize        int
	ReservePoolSize    int
	ReservePoolTimeout time.Duration
	MaxClientConn      int
	MaxDBConnections   int // 0 = unlimited
	MaxUserConnections int // 0 = unlimited

	ServerResetQuery       string
	ServerResetQueryAlways bool
	ServerCheckQuery       string // "" disables checks; "<empty>" (default) sends an empty query; see CheckQuery
	ServerCheckDelay       time.Duration
	ServerLifetime         time.Duration // 0 = unlimited
	ServerIdleTimeout      time.Duration // 0 = unlimited
	AutodbIdleTimeout      time.Duration // pools of "*" databases unused this long are dropped; 0 = never
	ServerConnectTimeout   time.Duration
	ServerLoginRetry       time.Duration

	QueryTimeout           time.Duration // 0 = off
	QueryWaitTimeout       time.Duration // 0 = wait forever
	ClientIdleTimeout      time.Duration
	IdleTransactionTimeout time.Duration
	TransactionTimeout     time.Duration
	ClientLoginTimeout     time.Duration
	CancelWaitTimeout      time.Duration
	// SuspendTimeout bounds how long SUSPEND waits for a client's answer to be flushed
	// (a client that does not read) and for the clients logging in; past it such clients
	// are dropped. 0 = wait forever.
	SuspendTimeout time.Duration

	IgnoreStartupParameters []string
	TrackExtraParameters    []string
	MaxPacketSize           int

	LogConnections    bool
	LogDisconnections bool
	LogPoolerErrors   bool
	Verbose           int
	LogFile           string
	PidFile           string
	// StatsPeriod is the window, in seconds, of SHOW STATS' and STATS_AVERAGES' averages.
	StatsPeriod int

	TCPKeepalive bool
	TCPKeepIdle  time.Duration
	TCPKeepIntvl time.Duration
	TCPKeepCnt   int

	ClientTLS TLSSettings
	ServerTLS TLSSettings

	MaxPreparedStatements  int
	ApplicationNameAddHost bool

	// pgmux-only settings (accepted in [pgbouncer] and as flags/env).
	MetricsAddr           string // "" = no HTTP listener
	PreparedStatementMode string // "cache" (default) or "unnamed"
	// ClientLoop: transaction-mode clients wait for their requests in the client loop
	// (proxy/clientloop.go), not in a goroutine each (Linux, plain sockets); on by
	// default.
	ClientLoop bool
	// AdaptiveProcs: pgmux runs as few Ps (GOMAXPROCS) as its CPU load needs, up to the
	// count the process started with (package proxy/procs); off: all of them always.
	AdaptiveProcs bool
	// CacheUnnamedStatements serves the client's unnamed-statement Parses from the
	// per-server statement cache (proxy/unnamed.go); per database too.
	CacheUnnamedStatements bool
	ListenMode             string // "multiplex" (default: one listener connection per database) or "pin"
	DirectPoolSize         int
	ShutdownTimeout        time.Duration
	// FailoverTimeout is how long a transaction of a multi-host database waits for a
	// server that fits (a new primary) when none is reachable.
	FailoverTimeout time.Duration
	// Reads on standbys (proxy/replica.go): ReplicaReads is off, explicit or auto;
	// ReplicaMaxLag (ms) skips a standby lagging more; ReplicaMaxWait (ms) bounds a
	// read-your-writes wait, 0 turns read-your-writes off. Each may be overridden per
	// database.
	ReplicaReads   string
	ReplicaMaxLag  int
	ReplicaMaxWait int

	// [databases] and [users] sections.
	Databases map[string]*Database // key is the client-visible name; "*" is the fallback
	Users     map[string]*User

	// InlineCredentials are users and passwords that did not come from auth_file, e.g. the
	// user in a FromURL sidecar config. Nil when unused. See Credentials.
	InlineCredentials map[string]Credential

	// Where it came from, for errors and RELOAD: the ini file's path, or the upstream URL
	// (password redacted) when FromURL is set.
	Path string
	// FromURL is set when the configuration was built from an upstream URL (FromURL), not
	// read from a file: Path is then no directory to resolve relative paths against.
	FromURL bool
	// Warnings collected while loading (unknown keys, ignored settings), each naming file:line.
	Warnings []string
	// Ignored holds the PgBouncer keys pgmux accepts and ignores that the file sets, by
	// name, with the value as written, for SHOW CONFIG. Nil when there are none.
	Ignored map[string]string
}

// TLSSettings holds client_tls_* or server_tls_* values.
type TLSSettings struct {
	SSLMode   string // disable, allow, prefer, require, verify-ca, verify-full
	KeyFile   string
	CertFile  string
	CAFile    string
	Protocols string
	Ciphers   string
}

// Database is one [databases] entry.
type Database struct {
	Name             string // client-visible name
	Host             string // hostname, IP (v4 or v6), or unix socket dir ("/..."); or a comma-separated list of them
	Port             int    // the port, or the first of Ports
	Ports            string // port list when port= names one per host ("5432,5433"), else ""
	DBName           string // server-side name; defaults to Name (so "*" in the fallback: DatabaseFor substitutes)
	User             string // forced server user; "" = the client's user
	Password         string
	AuthUser         string
	PoolSize         int // -1 = inherit default_pool_size
	MinPoolSize      int // -1 = inherit
	ReservePool      int // -1 = inherit
	MaxDBConnections int // -1 = inherit
	PoolMode         PoolMode
	ClientEncoding   string
	DateStyle        string
	TimeZone         string
	ConnectQuery     string
	ApplicationName  string
	DirectPoolSize   int // -1 = inherit
	// Options is libpq's options from an upstream URL ("-c search_path=app"): each
	// setting goes to the server as a startup parameter of every login (StartupOptions).
	Options string
	// With several hosts (hosts.go): which servers new connections may use, libpq's
	// values ("" = any), and how hosts take turns ("" = round-robin, or disable).
	TargetSessionAttrs string
	LoadBalanceHosts   string
	CacheUnnamed       int // cache_unnamed_statements: -1 = inherit, 0 or 1
	// replica_reads ("" = inherit), replica_max_lag and replica_max_wait (-1 = inherit).
	ReplicaReads   string
	ReplicaMaxLag  int
	ReplicaMaxWait int
}

// User is one [users] entry.
type User struct {
	Name               string
	PoolMode           PoolMode
	PoolSize           int // -1 = inherit
	MaxUserConnections int // -1 = inherit
	ReservePoolSize    int // -1 = inherit (PgBouncer 1.25 [users] reserve_pool_size)
}

// Credential is one userlist.txt entry.
type Credential struct {
	User     string
	Password string // plain text, "md5<32 hex>", or "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
}
