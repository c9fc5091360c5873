package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLocalRefusal: the startup names and search_path values PostgreSQL refuses by their
// syntax (checked against PostgreSQL 15 in test/sticky TestStartupSyntaxAsPostgres), and
// that checking one it takes allocates nothing (it runs at every login).
func TestLocalRefusal(t *testing.T) {
	for _, name := range []string{"app.x", "a.b.c", "_a.b$", "app.x$1", "é.x", "a_1.B2"} {
		require.True(t, customName(name), name)
	}
	for _, name := range []string{"app", "app.", ".x", "a..b", "1a.x", "a.1x", "my-app.x", "a.b c", "a.$"} {
		require.False(t, customName(name), name)
	}
	for _, v := range []string{"", "  ", "a", "a, b", ` "A""b" , c `, `""`, "$user,public", "a\t,\nb"} {
		require.True(t, identList(v), v)
	}
	for _, v := range []string{`"a`, "a b", "a,,b", "a,", ",a", `"a"b`, `"a""`, "a, "} {
		require.False(t, identList(v), v)
	}
	e := localRefusal("my-app.x", "1")
	require.Equal(t, "42602", e.Code)
	require.Equal(t, "22023", localRefusal("Search_Path", "a b").Code)
	require.Nil(t, localRefusal("statement_timeout", "a b"))
	allocs := testing.AllocsPerRun(100, func() {
		_ = localRefusal("app.tenant", "1")
		_ = localRefusal("search_path", `tenant_1, "Public"`)
	})
	require.Zero(t, allocs)
}
