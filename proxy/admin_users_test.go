package proxy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
)

// TestShowUsersListsAuthFile: SHOW USERS lists every user of the auth file, logged in or
// not, as PgBouncer does, so an operator who adds a user to userlist.txt sees it loaded
// once RELOAD returns, and one removed gone; SHOW LISTS counts them. pgmux listed only
// users of [users] and those with clients or servers.
func TestShowUsersListsAuthFile(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	users := func() []string {
		var names []string
		_, rows := show(t, adm, "SHOW USERS")
		for _, r := range rows {
			names = append(names, r["name"].(string))
		}
		return names
	}
	listed := func() int64 {
		_, rows := show(t, adm, "SHOW LISTS")
		return num(t, rowWhere(rows, "list", "users"), "items")
	}
	creds := map[string]config.Credential{
		"app":    {User: "app", Password: "secret"},
		"newbie": {User: "newbie", Password: "md5" + "0123456789abcdef0123456789abcdef"},
	}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	require.Contains(t, users(), "newbie", "a user of the auth file, never logged in")
	require.Contains(t, users(), "app")
	require.GreaterOrEqual(t, listed(), int64(2))

	delete(creds, "newbie")
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	require.NotContains(t, users(), "newbie", "removed from the auth file")
}
