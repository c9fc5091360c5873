package config

import "fmt"

// KeepRestartOnly gives next the values in force in old for every [pgbouncer] key that
// needs a restart (the table's non-reloadable keys), so that a reloaded configuration holds
// only what RELOAD may change and SHOW CONFIG shows the values in force. It returns the
// names of the keys whose new value waits for a restart.
func KeepRestartOnly(next, old *Config) ([]string, error) {
	var pending []string
	for i := range settings {
		s := &settings[i]
		if s.reloadable {
			continue
		}
		v := s.show(old)
		if s.show(next) == v {
			continue
		}
		switch {
		case s.keep != nil:
			s.keep(next, old)
		default:
			if err := s.parse(next, v); err != nil {
				return nil, fmt.Errorf("keep %s = %q until restart: %w", s.name, v, err)
			}
		}
		pending = append(pending, s.name)
	}
	return pending, nil
}

// Keys returns every [pgbouncer] key pgmux implements, in table order, and whether RELOAD
// may change it.
func Keys() []SettingInfo {
	out := make([]SettingInfo, len(settings))
	for i := range settings {
		out[i] = SettingInfo{Name: settings[i].name, Default: settings[i].def, Reloadable: settings[i].reloadable}
	}
	return out
}
