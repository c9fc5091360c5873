package sticky

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestStartupSyntaxAsPostgres: a startup custom parameter whose name is not two or more
// identifiers separated by dots, and a search_path that is not a list of identifiers,
// refuse the login through pgmux as on a direct connection (FATAL 42602, 22023 with
// PostgreSQL's message and detail), as a parameter of its own or in options; the ones
// PostgreSQL takes log in on both and a query sees the same value.
func TestStartupSyntaxAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "startsyntax")
	cases := []struct {
		params map[string]string
		show   string
	}{
		{map[string]string{"my-app.x": "1"}, ""},
		{map[string]string{"myapp.": "1"}, ""},
		{map[string]string{".x": "1"}, ""},
		{map[string]string{"myapp..x": "1"}, ""},
		{map[string]string{"1app.x": "1"}, ""},
		{map[string]string{"app.1x": "1"}, ""},
		{map[string]string{"options": "-c app.x$=1"}, ""},
		{map[string]string{"options": "-c my-app.x=1"}, "my_app.x"},
		{map[string]string{"my_app.x$1.y": "1"}, "my_app.x$1.y"},
		{map[string]string{"app.tenant": "42"}, "app.tenant"},
		{map[string]string{"search_path": `"unterminated`}, ""},
		{map[string]string{"search_path": "a b"}, ""},
		{map[string]string{"search_path": "a,,b"}, ""},
		{map[string]string{"search_path": "a,"}, ""},
		{map[string]string{"search_path": `"a"b`}, ""},
		{map[string]string{"options": `-c search_path=a\,\"b`}, ""},
		{map[string]string{"search_path": " a , \"B\"\"c\" ,d "}, "search_path"},
		{map[string]string{"search_path": `""`}, "search_path"},
		{map[string]string{"search_path": "  "}, "search_path"},
		{map[string]string{"search_path": "tenant_7, public"}, "search_path"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.params), func(t *testing.T) {
			var names []string
			if c.show != "" {
				names = append(names, c.show)
			}
			want := loginShows(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), c.params), names...)
			got := loginShows(t, withParams(t, m.url(db), c.params), names...)
			require.Equal(t, want, got)
		})
	}
}

// loginShows is loginOutcome and, for a login that succeeds, the values of names another
// login with the same URL sees.
func loginShows(t *testing.T, url string, names ...string) string {
	t.Helper()
	out := loginOutcome(t, url)
	if len(names) == 0 || !strings.HasPrefix(out, "ok") {
		return out
	}
	conn := muxtest.Connect(t, url, pgx.QueryExecModeCacheStatement, opTimeout)
	for _, name := range names {
		out += ", " + name + " " + show(t, conn, name)
	}
	return out
}
