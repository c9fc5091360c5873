package pgtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartStandby starts a streaming hot standby of s, a server started by pgtest (use
// StartPrivate for a primary that a test stops or fails over): pg_basebackup -R copies
// s over TCP as the superuser, and the copy starts on a port of its own. Each conf line
// is added to the standby's configuration (for example "recovery_min_apply_delay =
// '200ms'"). The standby is stopped at cleanup. It returns once the standby streams WAL
// from s.
func (s *Server) StartStandby(tb testing.TB, conf ...string) *Server {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "StartStandby needs a primary started by pgtest, not "+EnvURL)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := s.startStandby(ctx, conf)
	if err != nil {
		tb.Fatalf("pgtest: start standby: %v", err)
	}
	tb.Cleanup(srv.Stop)
	tb.Logf("pgtest: standby %s", srv)
	return srv
}

func (s *Server) startStandby(ctx context.Context, conf []string) (*Server, error) {
	p := s.cluster
	dir, err := makeTempDir(p.owner)
	if err != nil {
		return nil, err
	}
	c := &cluster{binDir: p.binDir, dir: dir, dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "postgres.log"), owner: p.owner}
	if len(conf) > 0 {
		c.extra = strings.Join(conf, "\n") + "\n"
	}
	srv, err := func() (*Server, error) {
		if err := c.startWatchdog(); err != nil {
			return nil, err
		}
		if err := c.run(ctx, "pg_basebackup", "-D", c.dataDir, "-h", s.Host, "-p", strconv.Itoa(s.Port),
			"-U", SuperUser, "-R", "-X", "stream", "--no-sync", "-c", "fast"); err != nil {
			return nil, err
		}
		port, err := c.startOnFreePort(ctx)
		if err != nil {
			return nil, err
		}
		srv := &Server{Host: "127.0.0.1", Port: port, SocketDir: c.dir, LogFile: c.logFile, DataDir: c.dataDir,
			superUser: SuperUser, superDB: "postgres", query: "sslmode=disable", binDir: c.binDir, cluster: c}
		return srv, srv.waitStreaming(ctx)
	}()
	if err != nil {
		c.destroy()
		return nil, err
	}
	return srv, nil
}

// waitStreaming waits until the standby's WAL receiver streams from its primary.
func (s *Server) waitStreaming(ctx context.Context) error {
	var last string
	for {
		conn, err := pgx.Connect(ctx, s.URL(s.superUser, "", s.superDB))
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')").Scan(&last)
			conn.Close(context.WithoutCancel(ctx))
		}
		if err == nil && last == "streaming" {
			return nil
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby does not stream (%s): %w\n%s", last, ctx.Err(), s.cluster.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Promote promotes a standby (pg_ctl promote) and waits until it accepts writes.
func (s *Server) Promote(tb testing.TB) {
	tb.Helper()
	if s.cluster == nil {
		skipOrFail(tb, "Promote needs a server started by pgtest, not "+EnvURL)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s.cluster.mu.Lock()
	err := s.cluster.pgctl(ctx, "promote", "-D", s.DataDir, "-w", "-t", "90", "-s")
	s.cluster.mu.Unlock()
	if err != nil {
		tb.Fatalf("pgtest: promote: %v\n%s", err, s.cluster.logTail())
	}
}

// InRecovery reports pg_is_in_recovery() of the server.
func (s *Server) InRecovery(tb testing.TB) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(s.superUser, s.superPassword, s.superDB))
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var in bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&in); err != nil {
		tb.Fatalf("pgtest: pg_is_in_recovery: %v", err)
	}
	return in
}
