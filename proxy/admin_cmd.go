package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/console"
)

// consoleBackend carries out the console's commands (console.Backend) on the server; ctx
// is the command's (consoleState.beginCommand), which bounds the commands that wait.
type consoleBackend struct {
	s   *Server
	ctx context.Context
}

var _ console.Backend = consoleBackend{}

func (b consoleBackend) Show(what string) ([]byte, error) { return b.s.show(what) }
func (b consoleBackend) Pause(db string) error            { return b.s.adminPause(b.ctx, db) }
func (b consoleBackend) Resume(db string) error           { return b.s.consoleResume(db) }
func (b consoleBackend) Suspend() error                   { return b.s.adminSuspend(b.ctx) }
func (b consoleBackend) Disable(db string, on bool) error { return b.s.adminDisable(db, on) }
func (b consoleBackend) Reconnect(db string) error        { return b.s.adminReconnect(db) }
func (b consoleBackend) WaitClose(db string) error        { return b.s.adminWaitClose(b.ctx, db) }
func (b consoleBackend) Kill(db string) error             { return b.s.adminKill(db) }
func (b consoleBackend) KillClient(id string) error       { return b.s.adminKillClient(id) }
func (b consoleBackend) Reload() error                    { return b.s.adminReload() }
func (b consoleBackend) Set(key, value string) ([]byte, error) {
	return b.s.adminSet(key, value)
}
func (b consoleBackend) Shutdown(how string) (func(), error) {
	return b.s.adminShutdown(how)
}

// configFileError is PostgreSQL's config_file_error, PgBouncer's SQLSTATE for a failed
// RELOAD.
const configFileError = "F0000"

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
// the "*" fallback), and not the console's own. Both refusals are 08P01 (console.Error):
// "no such database" not PostgreSQL's 3D000 for a login, and the console's database not
// 22023, as PgBouncer refuses PAUSE, KILL, RECONNECT... of its admin db.
func (s *Server) knownDB(db string) error {
	if isAdminDB(db) {
		return console.Error("cannot do that to the admin console database %q", db)
	}
	if _, ok := s.Config().Databases[db]; ok {
		return nil
	}
	if len(s.matching(db)) > 0 {
		return nil
	}
	return console.Error("no such database: %s", db)
}

// errResumed is the cause a waiting PAUSE or SUSPEND gets when RESUME lifts its hold.
var errResumed = errors.New("RESUME lifted the hold before every server was released")

// holdWait is a PAUSE [db] or SUSPEND waiting for its servers; consoleState.waits holds
// it until the wait ends or RESUME lifts its hold (cancel, with errResumed).
type holdWait struct {
	db      string // PAUSE db's database; "" for PAUSE and SUSPEND
	suspend bool
	cancel  context.CancelCauseFunc
}

// cmd is the command's name, for its errors.
func (w *holdWait) cmd() string {
	if w.suspend {
		return "SUSPEND"
	}
	return "PAUSE"
}

// holdPoolLocked brings pool p of database db in line with the console's holds: PAUSE
// and KILL hold new transactions and close the servers, SUSPEND holds them and keeps the
// servers, and a pool no longer held is resumed. c.mu is held: the holds that commands
// set and lift reach the pools in the order of the commands, whoever waits afterwards.
func (c *consoleState) holdPoolLocked(p *pool.Pool, db string) {
	switch {
	case c.closesServers(db):
		p.Pause()
	case c.suspended:
		p.Hold()
	default:
		p.Resume()
	}
}

// holdPoolsLocked applies the console's holds to entries' pools, their standby pools
// included, and returns those pools; s.console.mu is held.
func (s *Server) holdPoolsLocked(entries []*poolEntry) []*pool.Pool {
	var out []*pool.Pool
	for _, e := range entries {
		ps := append([]*pool.Pool{e.pool}, e.replicaPools()...)
		for _, p := range ps {
			s.console.holdPoolLocked(p, e.key.db)
		}
		out = append(out, ps...)
	}
	return out
}

// holdNewPool holds a pool just made for db (a new client's, a standby's) as the
// console holds db now.
func (s *Server) holdNewPool(p *pool.Pool, db string) {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdPoolLocked(p, db)
}

// errHeldAll refuses PAUSE, SUSPEND and KILL while the pooler is PAUSEd or SUSPENDed, in
// PgBouncer's words.
var errHeldAll = console.Error("already suspended/paused")

// beginHold sets the hold of PAUSE db (every database when db is ""), or of SUSPEND,
// at once: on the console, which holds new logins, and on the pools, which hold new
// transactions and, for PAUSE, close their idle servers. The function returned waits
// until the pools' servers are released (SUSPEND) or closed (PAUSE); ctx bounds it, and
// RESUME ends it. The caller may run the wait on another goroutine: the hold is in force
// once beginHold returns, so a RESUME that comes after lifts it, whenever the wait runs.
func (s *Server) beginHold(ctx context.Context, db string, suspend bool) (func() error, error) {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.pausedAll || c.suspended:
		return nil, errHeldAll
	case suspend && (len(c.paused) > 0 || len(c.killed) > 0):
		// PgBouncer's SUSPEND must flush every client's buffers: none may be held.
		return nil, console.Error("cannot suspend with paused databases")
	case suspend:
		c.suspended = true
		c.suspendedNow.Store(true)
	case db == "":
		c.pausedAll = true
	default:
		c.paused[db] = true // again, if paused already: the PAUSE waits for its servers anew
	}
	pools := s.holdPoolsLocked(s.matching(db))
	pools = append(pools, s.holdListenersLocked(db)...)
	wctx, cancel := context.WithCancelCause(ctx)
	w := &holdWait{db: db, suspend: suspend, cancel: cancel}
	c.waits[w] = struct{}{}
	return func() error { return s.awaitHold(wctx, w, pools) }, nil
}

// awaitHold waits for w's pools (beginHold) and reports how the wait ended.
func (s *Server) awaitHold(ctx context.Context, w *holdWait, pools []*pool.Pool) error {
	var err error
	if w.suspend {
		err = s.awaitSuspend(ctx, pools)
	} else {
		err = waitPaused(ctx, pools)
	}
	c := s.console
	c.mu.Lock()
	_, waiting := c.waits[w] // RESUME takes out the waits whose hold it lifts
	delete(c.waits, w)
	byUser := err != nil && waiting && errors.Is(context.Cause(ctx), errCanceledByUser)
	if byUser {
		s.liftLocked(w) // as PgBouncer resumes on a cancel from the console
	}
	c.mu.Unlock()
	w.cancel(nil)
	switch {
	case err == nil:
		return nil
	case !waiting || errors.Is(err, pool.ErrNotPaused):
		return pgerr.New(pgerr.QueryCanceled, "%s canceled: RESUME lifted it before every server was released", w.cmd())
	}
	return canceled(ctx, strings.ToLower(w.cmd()))
}

// waitPaused waits until every pool of pools has taken its hold (pool.WaitPaused).
func waitPaused(ctx context.Context, pools []*pool.Pool) error {
	for _, p := range pools {
		if err := p.WaitPaused(ctx); err != nil {
			return err
		}
	}
	return nil
}

// suspendStep is how often SUSPEND looks again at suspend_timeout and, past it, at the
// clients whose answers are not flushed; suspendPoll how often it looks at the servers.
const (
	suspendStep = 100 * time.Millisecond
	suspendPoll = 10 * time.Millisecond
)

// awaitSuspend is SUSPEND's wait for pools (suspendedAll: every server kept by a client
// counted suspended or back in its pool) and for the clients logging in since before it
// began (loginsBefore), bounded as PgBouncer bounds it by suspend_timeout (read at each
// step, so that a RELOAD during the wait applies): once that long has passed since
// SUSPEND began, the clients still logging in are closed, and every client whose answer
// is still being written to it (one that does not read) is dropped with its server, at
// each step, as PgBouncer closes its login clients and drops the sockets whose buffers it
// could not flush, and the wait goes on for the servers of the others.
func (s *Server) awaitSuspend(ctx context.Context, pools []*pool.Pool) error {
	start := time.Now()
	lastDrop := start
	t := time.NewTicker(suspendPoll)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx) // RESUME came (errResumed), or a cancel
		}
		logins := s.loginsBefore(start)
		if len(logins) == 0 && s.suspendedAll(pools) {
			return nil
		}
		now := time.Now()
		if to := s.Config().SuspendTimeout; to > 0 && now.Sub(start) >= to && now.Sub(lastDrop) >= suspendStep {
			lastDrop = now
			s.dropLogins(logins)
			s.dropUnflushed()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// dropUnflushed drops, with their servers, the linked clients SUSPEND could not count
// suspended (suspendedServer): an answer is on its way to them and not flushed yet, or a
// request to their server (PgBouncer's sockets whose buffers are not empty). They are
// ended as KILL ends them (killAll): one that does not read is closed untold. The FATAL
// is PgBouncer's for a socket it could not suspend (suspend_socket): 08P01
// "suspend_timeout".
func (s *Server) dropUnflushed() {
	c := s.console
	c.mu.Lock()
	resting := maps.Clone(c.resting)
	c.mu.Unlock()
	var stuck []*Session
	for _, sess := range s.Sessions() {
		if sess.entry == nil || sess.linkedServer() == nil {
			continue
		}
		if sess.kind.replication() {
			// Its relay lets go of the writer before it holds itself (holdStream).
			if sess.wmu.TryLock() {
				sess.unlockW()
				continue
			}
		} else if sess.suspendedServer(resting) != nil {
			continue
		}
		stuck = append(stuck, sess)
	}
	if len(stuck) == 0 {
		return
	}
	s.log.Warn("SUSPEND: dropping clients whose answers were not flushed within suspend_timeout", zap.Int("clients", len(stuck)))
	killAll(stuck, func(*Session) *pgerr.Error {
		return s.suspendTimeoutFatal("SUSPEND waited suspend_timeout (%v) for this connection's answer to be flushed.")
	})
}

// liftLocked lifts the hold w's command set, and that one only (a PAUSE db under a
// global PAUSE stays held); s.console.mu is held.
func (s *Server) liftLocked(w *holdWait) {
	c := s.console
	switch {
	case w.suspend:
		c.suspended = false
	case w.db == "":
		c.pausedAll = false
	default:
		delete(c.paused, w.db)
	}
	c.lifted()
	s.holdPoolsLocked(s.matching(w.db))
	s.holdListenersLocked(w.db)
	if w.suspend {
		go s.sendHeldNotes() // not under c.mu: it takes s.mu
	}
}

// adminPause holds new transactions of db (or of every database) and waits until each of
// its server connections is closed: the idle ones at once, the others once released.
func (s *Server) adminPause(ctx context.Context, db string) error {
	if db != "" {
		if err := s.knownDB(db); err != nil {
			return err
		}
	}
	wait, err := s.beginHold(ctx, db, false)
	if err != nil {
		return err
	}
	return wait()
}

// Pause holds every pool as the console's PAUSE does, returning once every server
// connection is closed, ctx is done or RESUME comes.
func (s *Server) Pause(ctx context.Context) error { return s.adminPause(ctx, "") }

// BeginPause is Pause in two steps (SIGUSR1): the hold is set before it returns, and the
// function it returns waits for the servers to close. A Resume after BeginPause has
// returned lifts the hold (and ends the wait with an error) whenever the wait runs.
func (s *Server) BeginPause(ctx context.Context) (wait func() error, err error) {
	return s.beginHold(ctx, "", false)
}

// Resume lifts the global PAUSE or SUSPEND as the console's RESUME without an argument
// does (SIGUSR2); databases paused or killed one by one stay held.
func (s *Server) Resume() error { return s.adminResume("") }

// adminSuspend holds everything; pgmux has no online restart, so SUSPEND is a global
// hold that RESUME undoes. As PgBouncer's SUSPEND keeps its server sockets, the servers
// stay connected: SUSPEND waits until every one is released or kept by a client at rest,
// whose next request waits for RESUME (suspend.go).
func (s *Server) adminSuspend(ctx context.Context) error {
	wait, err := s.beginHold(ctx, "", true)
	if err != nil {
		return err
	}
	return wait()
}

// adminResume is RESUME [db], as PgBouncer's admin.c has it. Without db it lifts the
// global PAUSE or SUSPEND only: a database held by PAUSE db or KILL db stays held until
// RESUME db, and with no global hold there is nothing to resume ("pooler is not
// paused/suspended"; "pooler is shutting down" once a shutdown has begun). With db it
// lifts that database's PAUSE db or KILL db. The hold is lifted at once on the console
// and on the pools; a PAUSE or SUSPEND still waiting for the servers whose hold it lifts
// ends with an error.
func (s *Server) adminResume(db string) error {
	c := s.console
	c.mu.Lock()
	defer c.mu.Unlock()
	resumed := false // SUSPEND ends: its held notifications go out
	switch {
	case db == "" && s.stopping.Load() != 0:
		return console.Error("pooler is shutting down")
	case db == "" && !c.pausedAll && !c.suspended:
		return console.Error("pooler is not paused/suspended")
	case db == "":
		resumed = c.suspended
		c.pausedAll, c.suspended = false, false
	case !c.paused[db] && !c.killed[db]:
		return console.Error("database %s is not paused", db)
	default:
		delete(c.paused, db)
		delete(c.killed, db)
	}
	for w := range c.waits {
		if w.db == db { // PAUSE and SUSPEND for "", PAUSE db for db
			delete(c.waits, w)
			w.cancel(errResumed)
		}
	}
	c.lifted()
	if resumed {
		go s.sendHeldNotes() // not under c.mu: it takes s.mu
	}
	s.holdListenersLocked(db)
	s.holdPoolsLocked(s.matching(db))
	return nil
}

// consoleResume is the console's RESUME [db]: adminResume, except that a database that
// is not paused and does not exist is "no such database" (as for the other commands),
// as PgBouncer says, rather than "not paused". A paused database that a
// reload has since removed can still be resumed.
func (s *Server) consoleResume(db string) error {
	err := s.adminResume(db)
	var pe *pgerr.Error
	if db != "" && errors.As(err, &pe) && pe.Code == pgerr.ProtocolViolation {
		if kerr := s.knownDB(db); kerr != nil {
			return kerr
		}
	}
	return err
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

// adminReconnect closes idle servers of db now and busy ones when they are released; a
// replication client's server, which is never released, at once with its client.
func (s *Server) adminReconnect(db string) error {
	if db != "" {
		if err := s.knownDB(db); err != nil {
			return err
		}
	}
	for _, e := range s.matching(db) {
		e.pool.Reconnect()
	}
	s.endStaleReplication("RECONNECT closes its server connections")
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
			return canceled(ctx, "wait_close")
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
	if c.pausedAll || c.suspended {
		c.mu.Unlock()
		return errHeldAll
	}
	c.killed[db] = true
	entries := s.matching(db)
	s.holdPoolsLocked(entries)
	s.holdListenersLocked(db)
	c.mu.Unlock()
	var killed []*Session
	for _, sess := range s.Sessions() {
		if sess.dbName == db && sess.entry != nil {
			killed = append(killed, sess)
		}
	}
	killAll(killed, func(*Session) *pgerr.Error {
		return pgerr.Fatal(pgerr.AdminShutdown, "database %s was killed by an administrator (KILL)", db)
	})
	for _, e := range entries {
		e.pool.CloseAll()
	}
	return nil
}

// adminKillClient disconnects the client with the id SHOW CLIENTS reports.
func (s *Server) adminKillClient(id string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, "0x"), 10, 64)
	if err != nil {
		return console.Error("invalid client id %q", id)
	}
	var sess *Session
	s.mu.Lock()
	for _, x := range s.clients.slots { // a rare command: a walk costs less than a second index
		if x != nil && x.id == n {
			sess = x
			break
		}
	}
	s.mu.Unlock()
	if sess == nil {
		return console.Error("no client with id %d", n)
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
		return pgerr.New(configFileError, "reload failed; the configuration in force is unchanged: %v", err)
	}
	return nil
}

// adminSet changes one setting at run time (SET key = value). Every refusal is 08P01 with
// what went wrong, where PgBouncer says "SET failed" with that code. The name is matched
// as written, as PgBouncer's parser matches it (strcmp): Default_Pool_Size is no setting.
// A setting that only a restart changes is answered as PgBouncer answers it (its parser
// skips such a key once the configuration is loaded, whatever the value, and reports
// success), and changed nowhere: not in force, not in SHOW CONFIG, not in the file. That
// is every key SHOW CONFIG lists as not changeable: listen_port and the others pgmux
// implements, and listen_backlog, so_reuseport, user... which it reads and ignores. Where
// PgBouncer is silent, a NOTICE says so and names the value in force. A key PgBouncer does
// not know is refused, as PgBouncer refuses it. One PgBouncer may change but pgmux
// ignores (syslog, log_stats...) is stored as PgBouncer stores it, checked as PgBouncer
// checks it, so that SHOW CONFIG shows it, with a NOTICE that it has no effect in pgmux.
func (s *Server) adminSet(key, value string) ([]byte, error) {
	if lower := strings.ToLower(key); lower != key {
		err := console.Error("unknown setting: %s", key)
		if _, ok := configRow(s.Config(), lower); ok {
			err = err.WithHint("Setting names are lower case: %s.", lower)
		}
		return nil, err
	}
	if config.Reloadable(key) {
		return nil, s.setLive(func(next *config.Config) error { return config.Set(next, key, value) })
	}
	st, ok := configRow(s.Config(), key)
	switch {
	case !ok:
		return nil, console.Error("%v", config.Set(config.Default(), key, value))
	case !st.Reloadable:
		return restartOnlyNotice(st), nil
	}
	if err := s.setLive(func(next *config.Config) error { return config.SetIgnored(next, key, value) }); err != nil {
		return nil, err
	}
	st, _ = configRow(s.Config(), key)
	return console.Notice(nil, key+" has no effect in pgmux: SET stored for SHOW CONFIG only",
		fmt.Sprintf("SHOW CONFIG shows %q. pgmux reads %s only for compatibility with PgBouncer and does not use it.", st.Value, key)), nil
}

// setLive applies set to a copy of the configuration in force and reloads with it, as
// RELOAD would with that change alone; set's error and the reload's are the console's.
func (s *Server) setLive(set func(next *config.Config) error) error {
	s.reloadMu.Lock() // the value is set on the configuration in force when it applies
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	next := s.cfg.Clone()
	creds := s.creds
	s.mu.Unlock()
	if err := set(next); err != nil {
		return console.Error("%v", err)
	}
	if err := next.Validate(); err != nil {
		return console.Error("%v", err)
	}
	if err := s.reloadLocked(next, creds); err != nil {
		return console.Error("%v", err)
	}
	return nil
}

// configRow returns SHOW CONFIG's row of key in cfg, if it lists key.
func configRow(cfg *config.Config, key string) (config.SettingInfo, bool) {
	for _, st := range config.Describe(cfg) {
		if st.Name == key {
			return st, true
		}
	}
	return config.SettingInfo{}, false
}

// restartOnlyNotice is the NOTICE of a SET of st, a setting only a restart changes. For
// one pgmux ignores, a restart would change nothing but SHOW CONFIG, and it says so.
func restartOnlyNotice(st config.SettingInfo) []byte {
	detail := fmt.Sprintf("The value in force stays %q (SHOW CONFIG). Change it in the configuration file and restart pgmux.", st.Value)
	if st.Ignored {
		detail = fmt.Sprintf("SHOW CONFIG still shows %q. pgmux reads %s from the configuration file only for compatibility with PgBouncer and does not use it.", st.Value, st.Name)
	}
	return console.Notice(nil, st.Name+" cannot change at run time: SET ignored", detail)
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
		return nil, console.Error("usage: SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]")
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
