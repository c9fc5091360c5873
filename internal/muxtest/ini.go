package muxtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// Ini describes a pgbouncer.ini and its userlist.txt. Zero values take the defaults noted
// on each field.
type Ini struct {
	PoolMode      string            // default "transaction"
	PoolSize      int               // default_pool_size; default 20
	MaxClientConn int               // default 2000
	AuthType      string            // default "md5"
	Users         map[string]string // userlist.txt: user -> password as written; default app/apppass
	Databases     []string          // [databases] lines; default "* = host=... port=..." to pg
	Extra         []string          // more [pgbouncer] lines, after the ones above
}

// Render returns the configuration for a listener on 127.0.0.1:port with no unix socket,
// with auth_file userlist.txt next to it.
func (b Ini) Render(pg *pgtest.Server, port int) string {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	orInt := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	dbs := b.Databases
	if dbs == nil {
		dbs = []string{fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port)}
	}
	var s strings.Builder
	s.WriteString("[databases]\n")
	for _, d := range dbs {
		s.WriteString(d + "\n")
	}
	fmt.Fprintf(&s, `
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = %s
auth_file = userlist.txt
pool_mode = %s
default_pool_size = %d
max_client_conn = %d
server_idle_timeout = 60
`, port, or(b.AuthType, "md5"), or(b.PoolMode, "transaction"), orInt(b.PoolSize, 20), orInt(b.MaxClientConn, 2000))
	for _, e := range b.Extra {
		s.WriteString(e + "\n")
	}
	return s.String()
}

// Userlist renders b's userlist.txt.
func (b Ini) Userlist() string {
	users := b.Users
	if users == nil {
		users = map[string]string{pgtest.AppUser: pgtest.AppPassword}
	}
	return Userlist(users)
}

// Write puts pgbouncer.ini (listening on port) and userlist.txt into dir and returns the
// ini's path.
func (b Ini) Write(t testing.TB, dir string, pg *pgtest.Server, port int) string {
	t.Helper()
	return WriteConfig(t, dir, b.Render(pg, port), b.Userlist())
}

// Userlist renders a userlist.txt of users (user -> password as written), sorted by user.
func Userlist(users map[string]string) string {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var s strings.Builder
	q := func(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }
	for _, u := range names {
		s.WriteString(q(u) + " " + q(users[u]) + "\n")
	}
	return s.String()
}

// WriteConfig writes ini as pgbouncer.ini and userlist as userlist.txt into dir and
// returns the ini's path.
func WriteConfig(t testing.TB, dir, ini, userlist string) string {
	t.Helper()
	path := filepath.Join(dir, "pgbouncer.ini")
	require.NoError(t, os.WriteFile(path, []byte(ini), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(userlist), 0o644))
	return path
}
