package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as a pgbouncer.ini. It must never panic, and a
// successful load must survive Dump, Diff and Clone.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"[pgbouncer]\nlisten_addr = *\nlisten_port = 6432\n",
		"[databases]\n* = host=db port=5432\nfoo = host=::1 connect_query='SELECT 1'\n",
		"[users]\nbob = pool_mode=transaction pool_size=3\n",
		"%include other.ini\n",
		"[pgbouncer]\nserver_lifetime = 5min\nquery_timeout = 0.5\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "pgbouncer.ini")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// Give relative %include lines something to find, including the file itself.
		if err := os.WriteFile(filepath.Join(dir, "other.ini"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			return
		}
		_ = Dump(c)
		_ = Diff(Default(), c)
		_ = c.Clone().String()
		for name := range c.Databases {
			_, _ = c.DatabaseFor(name)
		}
	})
}

// FuzzUserlist feeds arbitrary text to the userlist parser; it must never panic.
func FuzzUserlist(f *testing.F) {
	f.Add(`"user" "pass"` + "\n" + `"a""b" "md545f2603610af569b6155c45067268c6b"`)
	f.Fuzz(func(t *testing.T, text string) {
		_, _ = parseUserlist("userlist.txt", text)
	})
}

// FuzzConnString feeds arbitrary text to the [databases] value parser; it must never panic.
func FuzzConnString(f *testing.F) {
	f.Add(`host=a port=5 connect_query='SELECT \'x\'' password=a\ b`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = ParseDatabase("db", s)
	})
}

// FuzzFromURL feeds arbitrary text to the upstream URL parser; it must never panic, and
// its errors never quote the password.
func FuzzFromURL(f *testing.F) {
	f.Add("postgres://a+b:p%2Bw@[fd00::1]:5433,h2/d+b?options=-c%20x%3Da+b&sslmode=require")
	f.Add("postgresql://u:se%zzcret@h/d?x")
	f.Add("postgres://u:secret@h:99999/d?a=b=c")
	f.Fuzz(func(t *testing.T, s string) {
		_, err := FromURL(s)
		rest, ok := strings.CutPrefix(s, "postgres://u:secret@")
		if err == nil || !ok || strings.Contains(rest, "secret") {
			return
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("%q: error %q shows the password", s, err)
		}
	})
}
