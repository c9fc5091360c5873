package proxy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// docRef is a function or type named in doc.go's map: file.go:Func, file.go:Type or
// file.go:Type.Method, the file in this package or, with a slash, a path from the module
// root.
var docRef = regexp.MustCompile(`([A-Za-z0-9_./]+\.go):([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?`)

// packageDoc returns doc.go's package comment.
func packageDoc(t *testing.T) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	require.NotNil(t, f.Doc, "doc.go has a package comment")
	return f.Doc.Text()
}

// declsIn returns the functions and types declared in a Go file, as Func, Type or
// Type.Method.
func declsIn(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	require.NoError(t, err, "doc.go names %s", path)
	out := map[string]bool{}
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
			for _, sp := range gd.Specs {
				out[sp.(*ast.TypeSpec).Name.Name] = true
			}
		}
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			switch ix := typ.(type) {
			case *ast.IndexExpr:
				typ = ix.X
			case *ast.IndexListExpr:
				typ = ix.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				name = id.Name + "." + name
			}
		}
		out[name] = true
	}
	return out
}

// TestDocMap: every function and type doc.go's map names exists where it says, so the map cannot
// rot silently.
func TestDocMap(t *testing.T) {
	doc := packageDoc(t)
	refs := docRef.FindAllStringSubmatch(doc, -1)
	require.Greater(t, len(refs), 50, "doc.go's map names the handlers")
	files := map[string]map[string]bool{}
	for _, r := range refs {
		path := r[1]
		if strings.Contains(path, "/") {
			path = filepath.Join("..", path)
		}
		fs, ok := files[path]
		if !ok {
			fs = declsIn(t, path)
			files[path] = fs
		}
		name := r[2]
		if r[3] != "" {
			name += "." + r[3]
		}
		require.True(t, fs[name], "doc.go names %s, which %s does not declare", r[0], r[1])
	}
}

// TestDocMapListsMessages: every frontend message type the relay accepts, and every
// backend message type PostgreSQL sends, has a line in doc.go's map.
func TestDocMapListsMessages(t *testing.T) {
	doc := packageDoc(t)
	front, back, ok := strings.Cut(doc, "Backend messages")
	require.True(t, ok, "doc.go has a backend section")
	front = front[strings.Index(front, "Frontend messages"):]
	for typ := 0; typ < 256; typ++ {
		if frontendMessage(byte(typ)) {
			require.True(t, strings.Contains(front, "'"+string(rune(typ))+"'"), "frontend message %q is not in doc.go's map", typ)
		}
	}
	// Every backend message of protocol 3.0 (PostgreSQL's "Message Formats").
	for _, typ := range "123ACDEGHIKNRSTVWZcdnst" {
		require.True(t, strings.Contains(back, "'"+string(typ)+"'"), "backend message %q is not in doc.go's map", typ)
	}
}

// TestTrackerOnlyThroughLinkOf: pool.Conn.Tracker is read and written only by linkOf and
// stateOf, so the per-connection state has one type and one type assertion.
func TestTrackerOnlyThroughLinkOf(t *testing.T) {
	for _, f := range parseDir(t, ".") {
		for _, d := range f.file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || fd.Name.Name == "linkOf" || fd.Name.Name == "stateOf" && fd.Recv == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Tracker" {
					t.Errorf("%s: %s touches Tracker; use linkOf or stateOf", f.fset.Position(sel.Pos()), fd.Name.Name)
				}
				return true
			})
		}
	}
}

// parsedFile is one non-test Go file of a package directory.
type parsedFile struct {
	fset *token.FileSet
	file *ast.File
}

// parseDir parses the non-test Go files of dir, with comments.
func parseDir(t *testing.T, dir string) []parsedFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, dir)
	fset := token.NewFileSet()
	var out []parsedFile
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		require.NoError(t, err)
		out = append(out, parsedFile{fset, f})
	}
	return out
}

// structTypes calls fn for every struct type declared at file level in the packages this
// file checks (proxy, its packages and pool), with its doc comment.
func structTypes(t *testing.T, fn func(pos token.Position, name string, st *ast.StructType, doc string)) {
	for _, dir := range []string{".", "console", "link", "listenmux", "metrics", "../pool"} {
		for _, f := range parseDir(t, dir) {
			for _, d := range f.file.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, sp := range gd.Specs {
					ts := sp.(*ast.TypeSpec)
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					doc := ts.Doc
					if doc == nil && len(gd.Specs) == 1 {
						doc = gd.Doc
					}
					fn(f.fset.Position(ts.Pos()), ts.Name.Name, st, doc.Text())
				}
			}
		}
	}
}

// untyped reports whether a field's type says nothing of what it holds: any,
// interface{}, unsafe.Pointer, or a container of them.
func untyped(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "any"
	case *ast.InterfaceType:
		return len(x.Methods.List) == 0
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "unsafe" && x.Sel.Name == "Pointer"
	case *ast.StarExpr:
		return untyped(x.X)
	case *ast.ArrayType:
		return untyped(x.Elt)
	case *ast.MapType:
		return untyped(x.Key) || untyped(x.Value)
	case *ast.ChanType:
		return untyped(x.Value)
	case *ast.IndexExpr: // a generic type of one: atomic.Pointer[any]
		return untyped(x.Index)
	}
	return false
}

// TestNoUntypedFields: no struct of proxy or pool keeps state in a field whose type says
// nothing of it (any, interface{}, unsafe.Pointer, atomic.Value): state another layer
// keeps on a pool.Conn goes through a typed field (pool.Conn.Tracker, a pool.Tracker).
func TestNoUntypedFields(t *testing.T) {
	structTypes(t, func(pos token.Position, name string, st *ast.StructType, _ string) {
		ast.Inspect(st, func(n ast.Node) bool {
			fl, ok := n.(*ast.Field)
			if !ok {
				return true
			}
			sel, isSel := fl.Type.(*ast.SelectorExpr)
			if untyped(fl.Type) || isSel && sel.Sel.Name == "Value" && fmt.Sprint(sel.X) == "atomic" {
				t.Errorf("%s: a field of %s has an untyped type: declare what it holds", pos, name)
			}
			return true
		})
	})
}

// sharedByLock are types with no lock, atomic or channel of their own that more than one
// goroutine touches, under a lock of the value that holds them.
var sharedByLock = []string{"sessionTimers", "Log", "Expect", "Book", "stmtNode", "checkConn", "serverState"}

// ownerNote is how a doc comment says who owns a value: its owner, what guards it, which
// goroutines use it.
var ownerNote = regexp.MustCompile(`(?i)\b(owners?|owns|owned|guards|guarded|goroutines?)\b`)

// concurrent reports whether a field's type is made for use by several goroutines: a
// sync or sync/atomic type or a channel (or a pointer, array or slice of one).
func concurrent(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && (id.Name == "sync" || id.Name == "atomic")
	case *ast.IndexExpr:
		return concurrent(x.X)
	case *ast.StarExpr:
		return concurrent(x.X)
	case *ast.ArrayType:
		return concurrent(x.Elt)
	case *ast.ChanType:
		return true
	}
	return false
}

// TestSharedTypesNameOwners: every struct of proxy and pool that more than one goroutine
// touches says in its doc comment who owns what: those with a lock, an atomic or a
// channel among their fields, and those listed in sharedByLock.
func TestSharedTypesNameOwners(t *testing.T) {
	listed := map[string]bool{}
	for _, name := range sharedByLock {
		listed[name] = false
	}
	structTypes(t, func(pos token.Position, name string, st *ast.StructType, doc string) {
		shared := false
		if _, ok := listed[name]; ok {
			listed[name], shared = true, true
		}
		for _, fl := range st.Fields.List {
			shared = shared || concurrent(fl.Type)
		}
		if shared && !ownerNote.MatchString(doc) {
			t.Errorf("%s: %s is used by several goroutines; its doc comment must say who owns what", pos, name)
		}
	})
	for name, seen := range listed {
		require.True(t, seen, "sharedByLock names %s, which is no longer declared", name)
	}
}
