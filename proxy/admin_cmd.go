package proxy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/console"
)

// consoleBackend carries out the console's commands (console.Backend) on the server.
type consoleBackend struct{ s *Server }

var _ console.Backend = consoleBackend{}

func (b consoleBackend) Show(what string) ([]byte, error) { return b.s.show(what) }
func (b consoleBackend) Pause(db string) error            { return b.s.adminPause(b.s.console.ctx, db) }
func (b consoleBackend) Resume(db string) error           { return b.s.adminResume(db) }
func (b consoleBackend) Suspend() error                   { return b.s.adminSuspend(b.s.console.ctx) }
func (b consoleBackend) Disable(db string, on bool) error { return b.s.adminDisable(db, on) }
func (b consoleBackend) Reconnect(db string) error        { return b.s.adminReconnect(db) }
func (b consoleBackend) WaitClose(db string) error        { return b.s.adminWaitClose(b.s.console.ctx, db) }
func (b consoleBackend) Kill(db string) error             { return b.s.adminKill(db) }
func (b consoleBackend) KillClient(id string) error       { return b.s.adminKillClient(id) }
func (b consoleBackend) Reload() error                    { return b.s.adminReload() }
func (b consoleBackend) Set(key, value string) error      { return b.s.adminSet(key, value) }
func (b consoleBackend) Shutdown(how string) (func(), error) {
	return b.s.adminShutdown(how)
}

// cantChangeRuntimeParam is PostgreSQL's SQLSTATE for a setting that needs a restart.
const cantChangeRuntimeParam = "55P02"

// matching returns the pools of db, or every pool when db is "".
func (s *Server) matching(db string) []*poolEntry {
	var out []*poolEntry
	for _, e := range s.pools.all() {
		if db == "" || e.key.db == db {
			out = append(out, e)
		}
	}
	return out
}

// knownDB checks that db names a configured database (or one a client has opened through
// the "*" fallback).
func (s *Server) knownDB(db string) error {
	if isAdminDB(db) {
		return pgerr.New(pgerr.InvalidParameterValue, "cannot do that to the admin console database %q", db)
	}
	if _, ok := s.Config().Databases[db]; ok {
		return nil
	}
	if len(s.matching(db)) > 0 {
		return nil
	}
	return pgerr.New(pgerr.InvalidCatalogName, "no such database: %s", db)
}

// pauseAll holds each pool and waits until its hold has taken effect: with closing set
// (PAUSE), until every server connection is closed, the leased ones once released;
// without (SUSPEND), until every leased server is back.
func pauseAll(ctx context.Context, entries []*poolEntry, closing bool) error {
	var wg sync.WaitGroup
	errs := make([]error, len(entries))
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if closing {
				e.pool.Pause()
			} else {
				e.pool.Hold()
			}
			errs[i] = e.pool.WaitPaused(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// adminPause holds new transactions of db (or of every database) and waits until each of
// its server connections is closed: the idle ones at once, the others once released.
func (s *Server) adminPause(ctx context.Context, db string) error {
	c := s.console
	if db != "" {
		if err := s.knownDB(db); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if (db == "" && c.pausedAll) || (db != "" && c.paused[db]) {
		c.mu.Unlock()
		return pgerr.New(pgerr.ObjectNotInPrerequisite, "already paused")
	}
	if db == "" {
		c.pausedAll = true
	} else {
		c.paused[db] = true
	}
	c.mu.Unlock()
	if err := pauseAll(ctx, s.matching(db), true); err != nil {
		return pgerr.New(pgerr.QueryCanceled, "pause interrupted: %v", err)
	}
	return nil
}

// Pause holds every pool as the console's PAUSE does (SIGUSR1), returning once every
// server connection is released or ctx is done.
func (s *Server) Pause(ctx context.Context) error { return s.adminPause(ctx, "") }

// Resume lifts PAUSE, SUSPEND and KILL holds as the console's RESUME does (SIGUSR2).
func (s *Server) Resume() error { return s.adminResume("") }

// adminSuspend pauses everything; pgmux has no online restart, so SUSPEND is a global
// PAUSE that RESUME undoes.
func (s *Server) adminSuspend(ctx context.Context) error {
	c := s.console
	c.mu.Lock()
	if c.suspended {
		c.mu.Unlock()
		return pgerr.New(pgerr.ObjectNotInPrerequisite, "already suspended")
	}
	c.suspended = true
	c.mu.Unlock()
	return pauseAll(ctx, s.matching(""), false)
}

// adminResume lifts PAUSE, SUSPEND and KILL holds, for db or for everything.
func (s *Server) adminResume(db string) error {
	c := s.console
	c.mu.Lock()
	if db == "" {
		if !c.pausedAll && !c.suspended && len(c.paused) == 0 && len(c.killed) == 0 {
			c.mu.Unlock()
			return pgerr.New(pgerr.ObjectNotInPrerequisite, "pooler is not paused/suspended")
		}
		c.pausedAll, c.suspended = false, false
		clear(c.paused)
		clear(c.killed)
	} else {
		if !c.paused[db] && !c.killed[db] {
			c.mu.Unlock()
			return pgerr.New(pgerr.ObjectNotInPrerequisite, "database %s is not paused", db)
		}
		delete(c.paused, db)
		delete(c.killed, db)
	}
	c.lifted()
	c.mu.Unlock()
	for _, e := range s.matching(db) {
		c.mu.Lock()
		still := c.held(e.key.db)
		c.mu.Unlock()
		if !still {
			e.pool.Resume()
		}
	}
	return nil
}

// adminDisable refuses (or again admits) new clients of db.
func (s *Server) adminDisable(db string, disable bool) error {
	if err := s.knownDB(db); err != nil {
		return err
	}
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	if disable {
		c.disabled[db] = true
	} else {
		delete(c.disabled, db)
	}
	return nil
}

// adminReconnect closes idle servers of db now and busy ones when they are released.
func (s *Server) adminReconnect(db string) error {
	if db != "" {
		if err := s.knownDB(db); err != nil {
			return err
		}
	}
	for _, e := range s.matching(db) {
		e.pool.Reconnect()
	}
	return nil
}

// adminWaitClose waits until the servers marked by RECONNECT (or a reload) are closed.
func (s *Server) adminWaitClose(ctx context.Context, db string) error {
	if db != "" {
		if err := s.knownDB(db); err != nil {
			return err
		}
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		left := 0
		for _, e := range s.matching(db) {
			left += e.pool.Stale()
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return pgerr.New(pgerr.QueryCanceled, "wait_close interrupted: %v", ctx.Err())
		case <-t.C:
		}
	}
}

// adminKill drops every client and server of db at once; new clients wait for RESUME.
func (s *Server) adminKill(db string) error {
	if err := s.knownDB(db); err != nil {
		return err
	}
	c := s.console
	c.mu.Lock()
	c.killed[db] = true
	c.mu.Unlock()
	for _, sess := range s.Sessions() {
		if sess.dbName == db && sess.entry != nil {
			sess.kill("database " + db + " was killed by an administrator (KILL)")
		}
	}
	for _, e := range s.matching(db) {
		e.pool.Hold()
		e.pool.CloseAll()
	}
	return nil
}

// adminKillClient disconnects the client with the id SHOW CLIENTS reports.
func (s *Server) adminKillClient(id string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, "0x"), 10, 64)
	if err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "invalid client id %q", id)
	}
	var sess *Session
	s.mu.Lock()
	for _, x := range s.byCancel { // a rare command: a walk costs less than a second map
		if x.id == n {
			sess = x
			break
		}
	}
	s.mu.Unlock()
	if sess == nil {
		return pgerr.New(pgerr.InvalidParameterValue, "no client with id %d", n)
	}
	sess.kill("client was killed by an administrator (KILL_CLIENT)")
	return nil
}

// adminReload reloads the configuration from disk through the host's hook.
func (s *Server) adminReload() error {
	c := s.console
	if c.reload == nil {
		return pgerr.New(pgerr.FeatureNotSupported, "RELOAD is not available: pgmux was not started from a configuration file")
	}
	if err := c.reload(); err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "reload failed; the configuration in force is unchanged: %v", err)
	}
	return nil
}

// adminSet changes one setting at run time (SET key = value; key is lower-cased).
func (s *Server) adminSet(key, value string) error {
	if !config.Reloadable(key) {
		err := config.Set(config.Default(), key, value)
		if errors.Is(err, config.ErrUnknownSetting) || errors.Is(err, config.ErrUnsupportedSetting) {
			return pgerr.New(pgerr.InvalidParameterValue, "%v", err)
		}
		return pgerr.New(cantChangeRuntimeParam, "%s cannot be changed at run time: it needs a restart", key)
	}
	s.mu.Lock()
	next := s.cfg.Clone()
	creds := s.creds
	s.mu.Unlock()
	if err := config.Set(next, key, value); err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "%v", err)
	}
	if err := next.Validate(); err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "%v", err)
	}
	if err := s.Reload(next, creds); err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "%v", err)
	}
	return nil
}

// adminShutdown stops the process once the answer is sent: at once, after servers are
// released (WAIT_FOR_SERVERS) or after every client has left (WAIT_FOR_CLIENTS).
func (s *Server) adminShutdown(how string) (func(), error) {
	var mode ShutdownMode
	switch strings.ToUpper(how) {
	case "":
		mode = ShutdownImmediate
	case "WAIT_FOR_SERVERS":
		mode = ShutdownWaitForServers
	case "WAIT_FOR_CLIENTS":
		mode = ShutdownWaitForClients
	default:
		return nil, pgerr.New(pgerr.SyntaxError, "usage: SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]")
	}
	s.log.Info("shutdown requested on the admin console", zap.Stringer("mode", mode))
	return func() { s.requestShutdown(mode) }, nil
}

// requestShutdown hands the shutdown to the host (cmd/pgmux stops as on a signal), or
// stops the server itself (within shutdown_timeout) when no hook was given.
func (s *Server) requestShutdown(mode ShutdownMode) {
	if h := s.console.shutdown; h != nil {
		go h(mode)
		return
	}
	go func() {
		ctx, cancel := s.shutdownContext(mode)
		defer cancel()
		_ = s.Stop(ctx, mode)
	}()
}
