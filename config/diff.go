package config

import (
	"fmt"
	"slices"
	"strings"
)

// ChangeKind says whether a Change added, removed or altered something.
type ChangeKind int

const (
	Changed ChangeKind = iota
	Added
	Removed
)

// String names the kind.
func (k ChangeKind) String() string {
	switch k {
	case Changed:
		return "changed"
	case Added:
		return "added"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one difference between two configurations. Section is "pgbouncer",
// "databases" or "users"; Name is the key, database or user. Old and New are display text
// (passwords redacted), empty for the missing side of an add or remove. Reloadable is
// false for [pgbouncer] keys that need a restart; database and user changes always apply.
type Change struct {
	Section    string
	Name       string
	Kind       ChangeKind
	Old, New   string
	Reloadable bool
}

// String renders the change for a log line.
func (ch Change) String() string {
	s := fmt.Sprintf("[%s] %s %s: %q -> %q", ch.Section, ch.Name, ch.Kind, ch.Old, ch.New)
	if !ch.Reloadable {
		s += " (needs restart)"
	}
	return s
}

// Diff lists what differs from old to new: [pgbouncer] keys in table order, then
// databases, then users, each sorted by name. RELOAD uses it to log what applied and what
// needs a restart.
func Diff(old, new *Config) []Change {
	var out []Change
	for i := range settings {
		s := &settings[i]
		if a, b := s.show(old), s.show(new); a != b {
			out = append(out, Change{Section: "pgbouncer", Name: s.name, Old: a, New: b, Reloadable: s.reloadable})
		}
	}
	out = append(out, diffMaps("databases", old.Databases, new.Databases, databaseText)...)
	return append(out, diffMaps("users", old.Users, new.Users, func(a, b *User) (string, string) {
		return a.String(), b.String()
	})...)
}

// diffMaps compares two [databases] or [users] maps. text renders an old/new pair; either
// side may be nil.
func diffMaps[T comparable](section string, old, new map[string]*T, text func(a, b *T) (string, string)) []Change {
	var names []string
	for n := range old {
		names = append(names, n)
	}
	for n := range new {
		if _, ok := old[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []Change
	for _, n := range names {
		a, b := old[n], new[n]
		ch := Change{Section: section, Name: n, Reloadable: true}
		switch {
		case a == nil:
			ch.Kind = Added
			_, ch.New = text(b, b)
		case b == nil:
			ch.Kind = Removed
			ch.Old, _ = text(a, a)
		case *a == *b:
			continue
		default:
			ch.Old, ch.New = text(a, b)
		}
		out = append(out, ch)
	}
	return out
}

// databaseText renders two database entries, flagging a change hidden by redaction.
func databaseText(a, b *Database) (string, string) {
	sa, sb := a.String(), b.String()
	if a != b && sa == sb && a.Password != b.Password {
		sb += " (password changed)"
	}
	return sa, sb
}

// Dump returns every [pgbouncer] key pgmux implements with its current value as text, in
// table order, for SHOW CONFIG. Values are formatted as PgBouncer shows them: durations in
// seconds, booleans as 0/1, lists comma-separated.
func Dump(c *Config) [][2]string {
	out := make([][2]string, len(settings))
	for i := range settings {
		out[i] = [2]string{settings[i].name, settings[i].show(c)}
	}
	return out
}

// SettingInfo is one row of SHOW CONFIG: key, value, default, changeable.
type SettingInfo struct {
	Name       string
	Value      string
	Default    string
	Reloadable bool
	// Ignored marks a PgBouncer key that pgmux accepts and ignores: it has no effect.
	Ignored bool
}

// Describe returns SHOW CONFIG's rows: every key of PgBouncer 1.25 in PgBouncer's order
// (by name), the ones pgmux ignores included, with the value c holds (for an ignored key,
// the file's or SET's, else PgBouncer's default) and whether it can change at run time
// (for an ignored key, whether RELOAD and SET take a new value, as PgBouncer's); then
// pgmux's own keys in table order.
func Describe(c *Config) []SettingInfo {
	out := make([]SettingInfo, 0, len(settings)+len(ignoredSettings))
	var own []SettingInfo
	for i := range settings {
		s := &settings[i]
		row := SettingInfo{Name: s.name, Value: s.show(c), Default: s.def, Reloadable: s.reloadable}
		if s.own {
			own = append(own, row)
		} else {
			out = append(out, row)
		}
	}
	for _, s := range ignoredSettings {
		v, ok := c.Ignored[s.name]
		switch {
		case ok:
		case s.name == "conffile" && !c.FromURL:
			v = c.Path // PgBouncer's conffile is the file it was started with
		default:
			v = s.def
		}
		out = append(out, SettingInfo{Name: s.name, Value: v, Default: s.def, Reloadable: s.reload, Ignored: true})
	}
	slices.SortFunc(out, func(a, b SettingInfo) int { return strings.Compare(a.Name, b.Name) })
	return append(out, own...)
}
