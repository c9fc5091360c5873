package proxy

import (
	"errors"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/proxy/hba"
)

// Reload applies a new configuration and credentials to the running server: pool sizes,
// modes, timeouts, databases and users change for new transactions; clients stay
// connected. It follows the settings table (config/settings.go): a key RELOAD may change
// takes effect, a key that needs a restart is logged and keeps its value in force, which
// SHOW CONFIG shows. Logging (verbose, logfile) is applied through Options.ApplyLogging.
func (s *Server) Reload(cfg *config.Config, creds map[string]config.Credential) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reloadLocked(cfg, creds)
}

// ReloadFailed counts a reload that failed before a configuration reached Reload (the
// ini file could not be read or did not validate) in pgmux_reloads_total{result="failure"}.
// Reload counts its own outcome.
func (s *Server) ReloadFailed() { s.metrics.Reloaded(errReloadFailed) }

var errReloadFailed = errors.New("reload failed")

// reloadLocked is Reload with s.reloadMu held.
func (s *Server) reloadLocked(cfg *config.Config, creds map[string]config.Credential) (err error) {
	defer func() { s.metrics.Reloaded(err) }()
	s.mu.Lock()
	old := s.cfg
	s.mu.Unlock()
	for _, ch := range config.Diff(old, cfg) {
		if ch.Reloadable {
			s.log.Info("reload: setting changed", zap.String("change", ch.String()))
		} else {
			s.log.Warn("reload: setting needs a restart to take effect", zap.String("change", ch.String()))
		}
	}
	tc, tlsErr := clientTLSConfig(cfg)
	if err = tlsErr; err != nil {
		return err
	}
	stc, tlsErr := serverTLSConfig(cfg)
	if err = tlsErr; err != nil {
		return err
	}
	var hba hba.Rules
	if cfg.AuthType == config.AuthHBA {
		if hba, err = loadHBA(cfg); err != nil {
			return err
		}
	}
	// Keep what cannot change live.
	next := *cfg
	if _, err = config.KeepRestartOnly(&next, old); err != nil {
		return err
	}
	if s.applyLogging != nil {
		if err = s.applyLogging(&next); err != nil {
			return err
		}
	}
	if creds == nil {
		creds = map[string]config.Credential{}
	}
	s.mu.Lock()
	s.cfg = &next
	s.cfgP.Store(&next)
	s.creds = creds
	s.tlsConf, s.tlsDirect, s.serverTLS = tc, directTLS(tc), stc
	s.verifiers = nil
	s.parsedSecrets = nil
	s.authCache = nil
	s.hba, s.hbaErr = hba, nil
	s.mu.Unlock()
	s.pools.reconfigure(&next)
	if next.ServerTLS != old.ServerTLS {
		// As in PgBouncer, server connections opened under other server_tls_* settings
		// (perhaps less secure ones) are not used on: idle ones close now, busy ones
		// when released. New contents of the same files apply to new connections only.
		s.pools.reconnectAll()
	}
	s.endStaleReplication("the configuration was reloaded with another server for it")
	return nil
}
