package proxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoginStaysOffTheBlockingSyscallPath keeps the login storm from starting OS threads
// again (bench/README.md, "Idle clients at 2,000"): every syscall that goes through the
// runtime's blocking-syscall entry lets sysmon hand the caller's P to another thread, a
// new one when none is idle, and each costs about 50 KB for the life of the process. So
// a session writes to its client through its wire.Writer (raw write(2) on a socket), not
// net.Conn's Write, except tell, the FATAL any goroutine may send on the way out; and
// syscalls that cannot block are RawSyscalls. Whether threads are started depends on the
// host's scheduling, so this checks the code, not a thread count.
func TestLoginStaysOffTheBlockingSyscallPath(t *testing.T) {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var found []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				where := fset.Position(call.Pos()).String() + " in " + fn.Name.Name
				if recv, ok := sel.X.(*ast.SelectorExpr); ok && recv.Sel.Name == "nc" && sel.Sel.Name == "Write" && fn.Name.Name != "tell" {
					found = append(found, "net.Conn Write at "+where)
				}
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "syscall" && (sel.Sel.Name == "Syscall" || sel.Sel.Name == "Syscall6") {
					found = append(found, "syscall."+sel.Sel.Name+" at "+where)
				}
				return true
			})
		}
	}
	require.Empty(t, found, "client writes go through the session's wire.Writer; syscalls that cannot block are RawSyscalls")
}
