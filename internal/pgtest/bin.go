package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// serverBins are the programs a managed server needs, all in one directory.
var serverBins = []string{"initdb", "pg_ctl", "postgres"}

// binGlobs are where distributions install versioned PostgreSQL binaries.
var binGlobs = []string{
	"/usr/lib/postgresql/*/bin", // Debian, Ubuntu
	"/usr/pgsql-*/bin",          // RHEL, Fedora (PGDG)
}

// findBinDir returns the directory of initdb, pg_ctl and postgres. A broken
// PGMUX_PG_BIN is an error; nothing found at all is an *unavailableError.
func findBinDir(getenv func(string) string) (string, error) {
	if dir := getenv(EnvBin); dir != "" {
		if err := hasServerBins(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBin, dir, err)
		}
		return dir, nil
	}
	for _, pattern := range binGlobs {
		dirs, _ := filepath.Glob(pattern) // the patterns are valid
		if dir := newestBinDir(dirs); dir != "" {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow symlinks (/usr/local/bin/initdb -> .../15/bin/initdb) so the
		// client programs found next to it match the server's version.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); hasServerBins(dir) == nil {
			return dir, nil
		}
	}
	return "", &unavailableError{reason: "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: " +
		"install PostgreSQL (Debian: apt-get install postgresql-15), set " + EnvBin +
		" to their directory, or set " + EnvURL + " to a running server"}
}

// hasServerBins reports which server program, if any, dir lacks.
func hasServerBins(dir string) error {
	for _, name := range serverBins {
		if !isExecutable(filepath.Join(dir, name)) {
			return fmt.Errorf("no executable %s in %s", name, dir)
		}
	}
	return nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// newestBinDir picks, among .../<version>/bin or .../pgsql-<version>/bin
// directories, the one with the highest version that holds the server programs.
func newestBinDir(dirs []string) string {
	best, bestVer := "", []int(nil)
	for _, dir := range dirs {
		if hasServerBins(dir) != nil {
			continue
		}
		ver := parseVersion(strings.TrimPrefix(filepath.Base(filepath.Dir(dir)), "pgsql-"))
		if best == "" || compareVersions(ver, bestVer) > 0 {
			best, bestVer = dir, ver
		}
	}
	return best
}

// parseVersion reads the leading numeric components of s: "9.6" -> [9 6],
// "17beta1" -> [17]. Anything unparsable counts as version 0.
func parseVersion(s string) []int {
	var ver []int
	for _, part := range strings.Split(s, ".") {
		end := 0
		for end < len(part) && part[end] >= '0' && part[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(part[:end])
		if err != nil {
			break
		}
		ver = append(ver, n)
		if end < len(part) {
			break
		}
	}
	return ver
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
