package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startAttempts bounds retries when another process takes the chosen port
// between picking it and the postmaster binding it.
const startAttempts = 5

// cluster is one initdb'd data directory and its postmaster. mu serialises
// pg_ctl commands (Restart from parallel tests, Stop).
type cluster struct {
	binDir  string
	dir     string // temporary root; also the Unix socket directory
	dataDir string
	logFile string
	owner   *osUser // who runs initdb and postgres; nil: the current user
	extra   string  // more configuration lines, after serverConf's (standby.go)

	mu       sync.Mutex
	watchIn  io.WriteCloser // closing it (or our death) fires the watchdog
	watchdog *exec.Cmd
}

// startCluster creates, configures and starts a new server and its roles.
func startCluster(ctx context.Context) (*Server, error) {
	binDir, err := findBinDir(os.Getenv)
	if err != nil {
		return nil, err
	}
	owner, err := serverOSUser(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := makeTempDir(owner)
	if err != nil {
		return nil, err
	}
	c := &cluster{
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "postgres.log"),
		owner:   owner,
	}
	srv, err := c.start(ctx)
	if err != nil {
		c.destroy()
		return nil, err
	}
	return srv, nil
}

func (c *cluster) start(ctx context.Context) (*Server, error) {
	if err := c.startWatchdog(); err != nil {
		return nil, err
	}
	if err := c.run(ctx, "initdb", "-D", c.dataDir, "-U", SuperUser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, err
	}
	if err := c.writeFile(filepath.Join(c.dataDir, "pg_hba.conf"), hbaConf()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString("\ninclude 'pgtest.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("configure postgresql.conf: %w", err)
	}
	port, err := c.startOnFreePort(ctx)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		Host:      "127.0.0.1",
		Port:      port,
		SocketDir: c.dir,
		LogFile:   c.logFile,
		DataDir:   c.dataDir,
		superUser: SuperUser,
		superDB:   "postgres",
		query:     "sslmode=disable",
		binDir:    c.binDir,
		cluster:   c,
	}
	if err := bootstrap(ctx, srv); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, c.logTail())
	}
	return srv, nil
}

// startOnFreePort picks a free port and starts the postmaster on it, retrying
// with another port when the bind fails.
func (c *cluster) startOnFreePort(ctx context.Context) (int, error) {
	ipv6 := hasIPv6()
	var errs []error
	for range startAttempts {
		port, err := freePort(ipv6)
		if err != nil {
			return 0, err
		}
		if err := c.writeFile(filepath.Join(c.dataDir, "pgtest.conf"), serverConf(port, c.dir, ipv6)+c.extra); err != nil {
			return 0, err
		}
		err = c.pgctl(ctx, "start", "-D", c.dataDir, "-l", c.logFile, "-w", "-t", "90", "-s")
		if err == nil {
			return port, nil
		}
		log := c.logTail()
		errs = append(errs, fmt.Errorf("port %d: %w\n%s", port, err, log))
		if !strings.Contains(log, "could not bind") && !strings.Contains(log, "could not create any TCP/IP sockets") {
			break
		}
	}
	return 0, fmt.Errorf("start PostgreSQL: %w", errors.Join(errs...))
}

// restart runs pg_ctl restart with the given shutdown mode.
func (c *cluster) restart(ctx context.Context, mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.pgctl(ctx, "restart", "-D", c.dataDir, "-l", c.logFile, "-m", mode, "-w", "-t", "90", "-s"); err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTail())
	}
	return nil
}

// destroy stops the server and removes its directory. It is safe to call on a
// cluster that never started.
func (c *cluster) destroy() {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
		if c.pgctl(ctx, "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "30", "-s") != nil {
			_ = c.pgctl(ctx, "stop", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "30", "-s")
		}
	}
	if c.watchIn != nil {
		_ = c.watchIn.Close()
		_ = c.watchdog.Wait()
		c.watchIn = nil
	}
	_ = os.RemoveAll(c.dir)
}

// startWatchdog starts a shell that waits for EOF on its stdin, which happens
// when destroy closes the pipe or when the test process dies in any way. It
// then stops the server and removes the directory, so a killed test binary
// leaves no postmaster and no files behind.
func (c *cluster) startWatchdog() error {
	const script = `read -r _; "$0" stop -D "$1" -m immediate -w -t 30 >/dev/null 2>&1; rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, filepath.Join(c.binDir, "pg_ctl"), c.dataDir, c.dir)
	cmd.Dir = c.dir
	cmd.Env = childEnv(c.dir)
	cmd.SysProcAttr = c.owner.procAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	c.watchIn, c.watchdog = in, cmd
	return nil
}

func (c *cluster) pgctl(ctx context.Context, args ...string) error {
	return c.run(ctx, "pg_ctl", args...)
}

// run runs a PostgreSQL program as the cluster's owner. Output goes to a
// buffer: the postmaster must never inherit a pipe the test process reads, or
// Wait would block until the server exits; pg_ctl -l redirects it to the log.
func (c *cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv(c.dir)
	cmd.SysProcAttr = c.owner.procAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// writeFile writes a configuration file the server's owner can read.
func (c *cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return c.owner.chown(path)
}

// pid returns the postmaster's process id from postmaster.pid, or 0.
func (c *cluster) pid() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// logTail returns the end of the server log, for error messages.
func (c *cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "server log " + c.logFile + " ends with:\n" + strings.Join(lines, "\n")
}

// makeTempDir creates the cluster's root directory. As root it lives under
// /tmp with mode 0755 and belongs to the server's owner, so the postgres user
// can reach it whatever TMPDIR says. A long TMPDIR (macOS) also falls back to
// /tmp: Unix socket paths are limited to about 100 bytes.
func makeTempDir(owner *osUser) (string, error) {
	base := os.TempDir()
	if owner != nil || len(base) > 60 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return "", fmt.Errorf("create temporary directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", errors.Join(err, os.RemoveAll(dir))
	}
	if err := owner.chown(dir); err != nil {
		return "", errors.Join(fmt.Errorf("give %s to the postgres user: %w", dir, err), os.RemoveAll(dir))
	}
	return dir, nil
}

// childEnv is the environment of PostgreSQL programs: ours without PG*
// variables (PGDATA, PGPORT, ... would redirect them) and with HOME set to a
// directory the server's owner can use.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// reservedPorts are ranges other test fixtures bind to fixed ports.
var reservedPorts = [][2]int{{5432, 5433}, {6432, 6499}, {54990, 54999}}

// freePort asks the kernel for a free port on 127.0.0.1 that is, when ipv6 is
// true, also free on ::1. The port is released before PostgreSQL binds it, so
// the caller retries if someone else takes it first.
func freePort(ipv6 bool) (int, error) {
	var lastErr error
	for range 50 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if reserved(port) {
			_ = l.Close()
			continue
		}
		if ipv6 {
			l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
			if err != nil {
				_ = l.Close()
				lastErr = err
				continue
			}
			_ = l6.Close()
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("find a free port: %w", lastErr)
}

func reserved(port int) bool {
	for _, r := range reservedPorts {
		if port >= r[0] && port <= r[1] {
			return true
		}
	}
	return false
}

func hasIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// stop runs pg_ctl stop with the given shutdown mode, keeping the data directory.
func (c *cluster) stop(ctx context.Context, mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.pgctl(ctx, "stop", "-D", c.dataDir, "-m", mode, "-w", "-t", "90", "-s"); err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTail())
	}
	return nil
}

// startAgain starts a stopped cluster on the port its configuration already names.
func (c *cluster) startAgain(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.pgctl(ctx, "start", "-D", c.dataDir, "-l", c.logFile, "-w", "-t", "90", "-s"); err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTail())
	}
	return nil
}
