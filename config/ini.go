package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxIncludeDepth bounds %include nesting; real configs need two or three levels.
const maxIncludeDepth = 16

// iniHandler receives what the reader finds, with the file and line it came from.
type iniHandler interface {
	section(file string, line int, name string) error
	entry(file string, line int, section, key, value string) error
}

// iniReader reads pgbouncer.ini syntax: [section] headers, key = value lines, comments
// starting with ';' or '#' (only at the start of a line, as in PgBouncer) and
// "%include path" directives. The current section carries across includes.
type iniReader struct {
	h       iniHandler
	section string
	stack   []string // absolute paths of the files being read, outermost first
}

// readFile reads one file. includedFrom and includeLine locate the %include that named it.
func (r *iniReader) readFile(path, includedFrom string, includeLine int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return r.includeErr(includedFrom, includeLine, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for _, p := range r.stack {
		if p == abs {
			return r.includeErr(includedFrom, includeLine, fmt.Errorf("include cycle: %s is already being read", path))
		}
	}
	if len(r.stack) >= maxIncludeDepth {
		return r.includeErr(includedFrom, includeLine, errors.New("includes nested too deeply"))
	}
	data, err := readLimited(path, includedFrom != "")
	if err != nil {
		return r.includeErr(includedFrom, includeLine, err)
	}
	r.stack = append(r.stack, abs)
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	return r.readLines(path, string(data))
}

// maxFileSize bounds one configuration file, so "%include /dev/zero" fails instead of
// exhausting memory.
const maxFileSize = 16 << 20

// readLimited reads at most maxFileSize bytes of path. Included files must be regular
// files (not pipes or devices); the top-level file may be anything readable.
func readLimited(path string, regularOnly bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if regularOnly {
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", path)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err == nil && len(data) > maxFileSize {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return data, err
}

// includeErr reports a failure to open a file: at the %include line if there was one,
// otherwise as a plain error for the top-level file.
func (r *iniReader) includeErr(from string, line int, err error) error {
	if from == "" {
		return fmt.Errorf("config: %w", err)
	}
	return &LineError{File: from, Line: line, Key: "%include", Reason: err.Error()}
}

// readLines parses the text of one file.
func (r *iniReader) readLines(file, text string) error {
	text = strings.TrimPrefix(text, "\ufeff")
	for i, raw := range strings.Split(text, "\n") {
		if err := r.readLine(file, i+1, strings.TrimSpace(raw)); err != nil {
			return err
		}
	}
	return nil
}

// readLine handles one trimmed line.
func (r *iniReader) readLine(file string, n int, line string) error {
	switch {
	case line == "" || line[0] == ';' || line[0] == '#':
		return nil
	case line[0] == '%':
		return r.directive(file, n, line)
	case line[0] == '[':
		if !strings.HasSuffix(line, "]") {
			return &LineError{File: file, Line: n, Reason: fmt.Sprintf("malformed section header %q", line)}
		}
		r.section = strings.TrimSpace(line[1 : len(line)-1]) // as written: names are case-sensitive
		return r.h.section(file, n, r.section)
	}
	eq := equalsOutsideQuotes(line)
	if eq < 0 {
		return &LineError{File: file, Line: n, Reason: fmt.Sprintf("expected \"key = value\", got %q", line)}
	}
	key, value := strings.TrimSpace(line[:eq]), strings.TrimSpace(line[eq+1:])
	if key == "" {
		return &LineError{File: file, Line: n, Reason: "missing key before '='"}
	}
	if r.section == "" {
		return &LineError{File: file, Line: n, Key: key, Reason: "setting appears before any [section]"}
	}
	return r.h.entry(file, n, r.section, key, value)
}

// directive handles "%include path"; other directives are errors.
func (r *iniReader) directive(file string, n int, line string) error {
	name, arg := line, ""
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		name, arg = line[:i], line[i+1:]
	}
	if name != "%include" {
		return &LineError{File: file, Line: n, Reason: fmt.Sprintf("unknown directive %q", name)}
	}
	target := unquoteValue(strings.TrimSpace(arg))
	if target == "" {
		return &LineError{File: file, Line: n, Key: "%include", Reason: "missing file name"}
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(file), target)
	}
	return r.readFile(target, file, n)
}

// equalsOutsideQuotes finds the first '=' not inside a double-quoted key such as "my=db".
func equalsOutsideQuotes(s string) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '=':
			if !quoted {
				return i
			}
		}
	}
	return -1
}
