package link

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// forbidden are the imports that would give the link's rules I/O, a lock, a goroutine's
// worth of state, a clock or a logger, or tie them to the pool or to their caller.
var forbidden = []string{
	"net", "os", "sync", "sync/atomic", "time", "syscall", "go.uber.org/zap",
	"github.com/pgmux/pgmux/pool", "github.com/pgmux/pgmux/proxy",
}

// TestPurity: the package's own files (not its tests) import none of forbidden, nor
// anything under net/ or os/, so the rules stay pure however the package grows.
func TestPurity(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		require.NoError(t, err)
		checked++
		for _, im := range f.Imports {
			path, err := strconv.Unquote(im.Path.Value)
			require.NoError(t, err)
			for _, bad := range forbidden {
				if path == bad || (bad == "net" || bad == "os") && strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s: the link's rules do no I/O and take no lock (package doc)", name, path)
				}
			}
		}
	}
	require.Positive(t, checked, "no source files found")
}
