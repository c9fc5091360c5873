package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// buildPgmux builds cmd/pgmux into dir.
func buildPgmux(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pgmux")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Built as it ships (the Dockerfile's flags, cmd/pgmux TestBuildsMatchTheImage): static.
	cmd := osexec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/pgmux/pgmux/cmd/pgmux")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) add(s string) { l.mu.Lock(); l.b.WriteString(s); l.mu.Unlock() }
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDescriptorLimit runs the real binary with RLIMIT_NOFILE lowered and opens more
// connections than it has descriptors for: the client already connected keeps working,
// and pgmux serves new clients again once descriptors free up.
func TestDescriptorLimit(t *testing.T) {
	pg := pgtest.Start(t)
	bin := buildPgmux(t, t.TempDir())
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("/tmp", "pgmuxfd-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d
[pgbouncer]
listen_addr =
unix_socket_dir = %s
listen_port = 6432
auth_type = md5
auth_file = %s/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 1000
client_login_timeout = 60
`, pg.Host, pg.Port, dir, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgmux.ini"), []byte(ini), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"app" "apppass"`+"\n"), 0o644))

	// Lower the hard limit too: Go raises the soft limit to the hard one at start.
	cmd := osexec.Command("/bin/sh", "-c", `ulimit -n 40 && exec "$0" "$1"`, bin, filepath.Join(dir, "pgmux.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = cmd.Stderr
	require.NoError(t, cmd.Start())
	var out lockedBuffer
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			out.add(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "pgmux listening") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("pgmux output:\n%s", out.String())
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("pgmux did not start:\n%s", out.String())
	}
	url := fmt.Sprintf("host=%s port=6432 user=app password=apppass dbname=app sslmode=disable connect_timeout=10", dir)
	by := startBystander(t, url)
	time.Sleep(100 * time.Millisecond)

	sock := filepath.Join(dir, ".s.PGSQL.6432")
	var hogs []net.Conn
	for range 80 {
		nc, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			break // the backlog is full too
		}
		hogs = append(hogs, nc)
	}
	t.Logf("opened %d idle connections against a limit of 40 descriptors", len(hogs))
	eventually(t, 10*time.Second, "pgmux never ran out of descriptors", func() bool {
		return strings.Contains(out.String(), "accept failed")
	})
	time.Sleep(500 * time.Millisecond) // the bystander keeps working meanwhile
	for _, nc := range hogs {
		nc.Close()
	}
	eventually(t, 20*time.Second, "pgmux did not recover after descriptors were freed", func() bool {
		c, err := tryConnect(url)
		if err != nil {
			return false
		}
		defer c.Close(context.Background())
		var n int
		return c.QueryRow(context.Background(), "SELECT 1").Scan(&n) == nil
	})
	by.finish(t)
}
