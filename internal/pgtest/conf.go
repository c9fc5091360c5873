package pgtest

import (
	"fmt"
	"strings"
)

// serverConf is included at the end of postgresql.conf. Durability is traded
// for speed: a test server's data is thrown away.
func serverConf(port int, socketDir string, ipv6 bool) string {
	listen := "127.0.0.1"
	if ipv6 {
		listen += ",::1"
	}
	return fmt.Sprintf(`# written by pgtest
listen_addresses = '%s'
port = %d
unix_socket_directories = '%s'
unix_socket_permissions = 0777
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
ssl = off
logging_collector = off
log_line_prefix = '%%m [%%p] %%q%%u@%%d '
log_min_messages = warning
`, listen, port, strings.ReplaceAll(socketDir, "'", "''"))
}

// hbaRules are the TCP authentication rules, first match wins.
var hbaRules = []struct{ user, method string }{
	{SuperUser, "trust"},
	{MD5User, "md5"},
	{ScramUser, "scram-sha-256"},
	{PlainUser, "password"},
	{"all", "trust"},
}

// hbaConf replaces initdb's pg_hba.conf: trust on the socket, one method per
// role over TCP on loopback.
func hbaConf() string {
	var b strings.Builder
	b.WriteString("# written by pgtest\n# TYPE  DATABASE     USER        ADDRESS         METHOD\n")
	b.WriteString("local   all          all                         trust\n")
	b.WriteString("local   replication  all                         trust\n")
	for _, addr := range []string{"127.0.0.1/32", "::1/128"} {
		for _, r := range hbaRules {
			fmt.Fprintf(&b, "host    all          %-11s %-15s %s\n", r.user, addr, r.method)
		}
		fmt.Fprintf(&b, "host    replication  all         %-15s trust\n", addr)
	}
	return b.String()
}
