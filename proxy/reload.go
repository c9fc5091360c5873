package proxy

import (
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
)

// Reload applies a new configuration and credentials to the running server: pool sizes,
// modes, timeouts, databases and users change for new transactions; clients stay
// connected. Settings that need a restart (listen addresses) are logged and kept.
func (s *Server) Reload(cfg *config.Config, creds map[string]config.Credential) (err error) {
	defer func() { s.metrics.reloaded(err) }()
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
	var hba hbaRules
	if cfg.AuthType == config.AuthHBA {
		if hba, err = loadHBA(cfg); err != nil {
			return err
		}
	}
	// Keep what cannot change live.
	next := *cfg
	next.ListenAddr, next.ListenPort, next.UnixSocketDir = old.ListenAddr, old.ListenPort, old.UnixSocketDir
	if creds == nil {
		creds = map[string]config.Credential{}
	}
	s.mu.Lock()
	s.cfg = &next
	s.cfgP.Store(&next)
	s.creds = creds
	s.tlsConf = tc
	s.verifiers = nil
	s.authCache = nil
	s.hba, s.hbaErr = hba, nil
	s.mu.Unlock()
	s.setTracked(&next)
	s.pools.reconfigure(&next)
	return nil
}
