package config

import (
	"fmt"
	"maps"
)

// KeepRestartOnly gives next the values in force in old for every [pgbouncer] key that
// needs a restart (the table's non-reloadable keys, and the ignored keys PgBouncer does
// not let change at run time), so that a reloaded configuration holds
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
	return keepIgnored(next, old, pending), nil
}

// keepIgnored gives next old's value of each ignored key PgBouncer does not let change at
// run time (SHOW CONFIG says changeable = no), appending its name to pending when the
// new value differs; next.Ignored is copied first, as next may share it with the
// configuration it was read into.
func keepIgnored(next, old *Config, pending []string) []string {
	var kept map[string]string
	for _, s := range ignoredSettings {
		if s.reload {
			continue
		}
		a, inOld := old.Ignored[s.name]
		b, inNew := next.Ignored[s.name]
		if a == b && inOld == inNew {
			continue
		}
		if kept == nil {
			kept = maps.Clone(next.Ignored)
			if kept == nil {
				kept = map[string]string{}
			}
		}
		if inOld {
			kept[s.name] = a
		} else {
			delete(kept, s.name)
		}
		pending = append(pending, s.name)
	}
	if kept != nil {
		next.Ignored = kept
	}
	return pending
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
