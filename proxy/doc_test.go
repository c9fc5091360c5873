package proxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
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
			if ix, ok := typ.(*ast.IndexExpr); ok {
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

// TestAttachOnlyThroughLinkOf: pool.Conn.Attach is read and written only by linkOf and
// stateOf, so the per-connection state has one type and one type assertion.
func TestAttachOnlyThroughLinkOf(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || fd.Name.Name == "linkOf" || fd.Name.Name == "stateOf" && fd.Recv == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Attach" {
					t.Errorf("%s: %s touches Attach; use linkOf or stateOf", fset.Position(sel.Pos()), fd.Name.Name)
				}
				return true
			})
		}
	}
}
