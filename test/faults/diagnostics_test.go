package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// logLines returns the JSON log lines of pgmux's log file whose message starts with msg,
// at any level but debug.
func logLines(t testing.TB, path, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if s, _ := m["msg"].(string); strings.HasPrefix(s, msg) && m["level"] != "debug" {
			out = append(out, m)
		}
	}
	return out
}

// TestServerLoginFailureDiagnostics: a wrong server-side password (the [databases]
// line's) is logged at warn as pgmux's login to the server, with PostgreSQL's message,
// once however many clients hit it; the client gets 08P01 "server login failed" and is
// not logged as a client whose own login failed.
func TestServerLoginFailureDiagnostics(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Databases: []string{
		fmt.Sprintf("* = host=%s port=%d", pg.Host, pg.Port),
		fmt.Sprintf("wrongpw = host=%s port=%d dbname=%s user=%s password=not-the-password", pg.Host, pg.Port, pgtest.AppDB, pgtest.ScramUser),
	}})
	for range 3 {
		_, err := tryConnect(m.App("wrongpw"))
		pe := requireCode(t, err, "08P01")
		require.Contains(t, pe.Message, "server login failed: password authentication failed")
		require.Contains(t, pe.Hint, "auth_file")
	}
	// The server's own answer: scramuser logs in with SCRAM over TCP (pgtest's pg_hba.conf).
	warned := logLines(t, m.LogPath, "server login failed")
	require.Len(t, warned, 1, "one warning for the same failure, not one per attempt")
	require.Equal(t, "warn", warned[0]["level"])
	require.Equal(t, "28P01", warned[0]["code"])
	require.Contains(t, warned[0]["error"], "password authentication failed")
	require.Equal(t, fmt.Sprintf("%s:%d", pg.Host, pg.Port), warned[0]["addr"])
	require.Empty(t, logLines(t, m.LogPath, "client login failed"), "the client's own login succeeded")
	// The other databases are fine.
	exec(t, connect(t, m.App(pgtest.AppDB)), "SELECT 1")
}

// TestServerDownDiagnostics: PostgreSQL stops. The client in use gets an error at once and
// pgmux warns once that the server is unreachable, with its address; server connections
// closing are logged with their reason. PostgreSQL starts again: a client that queued
// meanwhile connects as soon as the server answers, not after the rest of
// server_login_retry (30 s here), and the recovery is logged once.
func TestServerDownDiagnostics(t *testing.T) {
	pg := pgtest.StartPrivate(t)
	m := startMux(t, pg, bouncer{Extra: []string{"server_login_retry = 30", "query_wait_timeout = 25"}})
	idle := connect(t, m.App(pgtest.AppDB))
	exec(t, idle, "SELECT 1")
	connected := logLines(t, m.LogPath, "server connected")
	require.NotEmpty(t, connected, "log_connections is on by default")
	require.Equal(t, fmt.Sprintf("%s:%d", pg.Host, pg.Port), connected[0]["addr"])

	restart := stopServer(t, pg)
	ctx, cancel := ctxT()
	defer cancel()
	_, err := idle.Exec(ctx, "SELECT 1")
	requireCode(t, err, "08006")
	eventually(t, 5*time.Second, "the closed server connection was not logged", func() bool {
		return len(logLines(t, m.LogPath, "server disconnected")) > 0
	})
	gone := logLines(t, m.LogPath, "server disconnected")[0]
	require.NotEmpty(t, gone["reason"], "a disconnect names its reason: %v", gone)

	// A client queues behind server_login_retry while the server is down.
	waiter := connect(t, m.App(pgtest.AppDB))
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 28*time.Second)
		defer cancel()
		_, err := waiter.Exec(ctx, "SELECT 1")
		got <- err
	}()
	time.Sleep(time.Second)
	restart()
	up := time.Now()
	select {
	case err := <-got:
		require.NoError(t, err)
		// Generous against a loaded machine; without the probe it is server_login_retry.
		require.Less(t, time.Since(up), 5*time.Second, "the queued client waited for server_login_retry")
	case <-time.After(28 * time.Second):
		t.Fatal("the queued client never got a server")
	}
	down := logLines(t, m.LogPath, "server unreachable")
	require.Len(t, down, 1, "one warning per outage")
	require.Equal(t, "warn", down[0]["level"])
	require.Equal(t, fmt.Sprintf("%s:%d", pg.Host, pg.Port), down[0]["addr"])
	back := logLines(t, m.LogPath, "server reachable again")
	require.Len(t, back, 1)
	require.Equal(t, "info", back[0]["level"])
	exec(t, idle, "SELECT 1")
}
