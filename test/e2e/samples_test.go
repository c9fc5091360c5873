package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// defaultPG15HBA is pg_hba.conf as a default PostgreSQL 15 package ships it for TCP:
// SCRAM for everyone on loopback. The superuser keeps trust so the test can set up.
const defaultPG15HBA = `local   all   all                    trust
host    all   postgres   127.0.0.1/32   trust
host    all   all        127.0.0.1/32   scram-sha-256
host    all   all        ::1/128        scram-sha-256
`

// samplePasswords are the passwords deploy/userlist.txt documents for its users.
var samplePasswords = map[string]string{"app": "app", "admin": "admin", "stats": "stats"}

// TestDeploySamples starts the pgmux binary from deploy/pgbouncer.ini and
// deploy/userlist.txt as shipped (only the server port, the listen port and the paths are
// changed), in front of a PostgreSQL 15 that wants SCRAM and holds the roles
// deploy/initdb/10-pgmux-sample-roles.sql creates, and logs in as every user the
// userlist defines, with psql as the README and the sample say: the app user to its
// database, the console users to the console over TCP and over the unix socket.
func TestDeploySamples(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	psql := pg.RequireBin(t, "psql")
	pg.WriteDataFile(t, "pg_hba.conf", []byte(defaultPG15HBA))
	pg.Reload(t)
	roles, err := os.ReadFile("../../deploy/initdb/10-pgmux-sample-roles.sql")
	require.NoError(t, err)
	pg.ExecDB(t, pgtest.AppDB, string(roles))

	ini, err := os.ReadFile("../../deploy/pgbouncer.ini")
	require.NoError(t, err)
	userlist, err := os.ReadFile("../../deploy/userlist.txt")
	require.NoError(t, err)
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "pgmux-sock-") // short: a socket path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	port := freePort(t)
	text := string(ini)
	for _, r := range []struct{ re, with string }{
		{`(?m)^(app = host=127\.0\.0\.1 port=)5432( dbname=app)$`, "${1}" + strconv.Itoa(pg.Port) + "${2}"},
		{`(?m)^(listen_port = )6432$`, "${1}" + strconv.Itoa(port)},
		{`(?m)^(unix_socket_dir = )/run/pgmux$`, "${1}" + sockDir},
		{`(?m)^(auth_file = )/etc/pgmux/userlist\.txt$`, "${1}" + filepath.Join(dir, "userlist.txt")},
	} {
		re := regexp.MustCompile(r.re)
		require.Len(t, re.FindAllString(text, -1), 1, "deploy/pgbouncer.ini: %s", r.re)
		text = re.ReplaceAllString(text, r.with)
	}
	iniPath := muxtest.WriteConfig(t, dir, text, string(userlist))
	p, err := startProcIn(t, dir, "pgmux listening", nil, os.Environ(), pgmuxBinary(t), iniPath)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgmux output:\n%s", p.out)
		}
	})

	users := regexp.MustCompile(`(?m)^"([^"]+)" "SCRAM-SHA-256\$`).FindAllStringSubmatch(string(userlist), -1)
	require.Len(t, users, len(samplePasswords), "every user in deploy/userlist.txt has a SCRAM verifier and a documented password")
	psqlAs := func(host, user, db, sql string) string {
		t.Helper()
		out, err := muxtest.RunCmd(t, 30*time.Second, muxtest.LibpqEnv(host, port, user, samplePasswords[user], db),
			psql, "-X", "-At", "-c", sql)
		require.NoError(t, err, "psql -h %s -U %s %s: %s", host, user, db, out)
		return out
	}
	for _, m := range users {
		user := m[1]
		pw, ok := samplePasswords[user]
		require.True(t, ok, "deploy/userlist.txt user %s has no documented password", user)
		require.NotEmpty(t, pw)
		switch user {
		case "admin", "stats":
			out := psqlAs("127.0.0.1", user, "pgbouncer", "SHOW POOLS")
			require.Contains(t, out, "app|app", "SHOW POOLS as %s", user)
			psqlAs(sockDir, user, "pgbouncer", "SHOW VERSION")
		default:
			require.Equal(t, user+"@app\n", psqlAs("127.0.0.1", user, "app", "SELECT current_user || '@' || current_database()"))
		}
	}
	// A client's startup settings reach the server through the sample configuration
	// (PGOPTIONS, as pgx's and libpq's search_path options send them): pgmux carries every
	// one, so the sample must not list them in ignore_startup_parameters.
	out, err := muxtest.RunCmd(t, 30*time.Second,
		append(muxtest.LibpqEnv("127.0.0.1", port, "app", "app", "app"), "PGOPTIONS=-c search_path=pg_catalog,public -c extra_float_digits=2"),
		psql, "-X", "-At", "-c", "SELECT current_setting('search_path') || ' ' || current_setting('extra_float_digits')")
	require.NoError(t, err, out)
	require.Equal(t, "pg_catalog,public 2\n", out, "the client's startup search_path and extra_float_digits")
	// The console's users differ in what they may do.
	psqlAs("127.0.0.1", "admin", "pgbouncer", "RELOAD")
	out, err = muxtest.RunCmd(t, 30*time.Second, muxtest.LibpqEnv("127.0.0.1", port, "stats", "stats", "pgbouncer"),
		psql, "-X", "-At", "-c", "RELOAD")
	require.Error(t, err, "stats may not RELOAD: %s", out)
	// A wrong password is refused.
	out, err = muxtest.RunCmd(t, 30*time.Second, muxtest.LibpqEnv("127.0.0.1", port, "app", "wrong", "app"),
		psql, "-X", "-At", "-c", "SELECT 1")
	require.Error(t, err, out)
	require.True(t, strings.Contains(out, "password authentication failed"), out)
	require.NoError(t, p.stop(t, syscall.SIGINT, 10*time.Second), "%s", p.out)
}
